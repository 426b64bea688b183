//! `POST /api/contacts/import`: a CSV body (`phone`, optional `name`, any other column into
//! attributes) upserting contacts by phone. The body is read as a stream and written in batches,
//! so a file of 100,000 rows is never held in memory at once; it has a larger size limit than
//! the API's other requests.

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use futures::TryStreamExt;
use tower_http::limit::RequestBodyLimitLayer;

use crate::{auth::Caller, rest_error::RestError, state::AppState};

/// The largest CSV accepted: about a million rows of typical contacts.
pub const MAX_IMPORT_BYTES: usize = 128 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/contacts/import", post(import))
        .layer(RequestBodyLimitLayer::new(MAX_IMPORT_BYTES))
}

/// The import's report (200), or 400 `VALIDATION_FAILED` for a file that cannot be imported at
/// all (no `phone` column, too many columns), 503 when the database fails midway.
async fn import(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Body,
) -> Result<Response, RestError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let report = state
        .services
        .contacts()
        .import_csv(principal.workspace_id, reader)
        .await?;
    Ok((StatusCode::OK, Json(report)).into_response())
}
