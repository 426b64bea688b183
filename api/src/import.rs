//! `POST /api/contacts/import`: a CSV body (`phone`, optional `name`, any other column into
//! attributes) upserting contacts by phone. The body is read as a stream and written in batches,
//! so a file of 100,000 rows is never held in memory at once; it has a larger size limit than
//! the API's other requests.

use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::TryStreamExt;
use tower_http::limit::RequestBodyLimitLayer;
use waflow_jobs::Error;

use crate::{
    AppState,
    export::{authenticate, refuse},
};

/// The largest CSV accepted: about a million rows of typical contacts.
pub const MAX_IMPORT_BYTES: usize = 128 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/contacts/import", post(import))
        .layer(RequestBodyLimitLayer::new(MAX_IMPORT_BYTES))
}

async fn import(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let principal = match authenticate(&state, peer, &headers).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    match state
        .services
        .contacts()
        .import_csv(principal.workspace_id, reader)
        .await
    {
        Ok(report) => (StatusCode::OK, Json(report)).into_response(),
        Err(error @ Error::Validation(_)) => refuse(
            StatusCode::BAD_REQUEST,
            error.code(),
            &error.public_message(),
        ),
        Err(error) => {
            tracing::error!(%error, "contact import failed");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                error.code(),
                &error.public_message(),
            )
        }
    }
}
