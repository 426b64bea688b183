//! Media through Waflow, both ways; the sender's access token is used on the server only.
//!
//! - `GET /api/messages/{id}/media`: a received message's image, video, audio, document or
//!   sticker, streamed from Meta with its content type; the caller never sees Meta's URL.
//! - `POST /api/senders/{id}/media`: a file to send by id. The body is the file, its
//!   `Content-Type` the file's MIME type; `?filename=` names it. Answers
//!   `{"id", "kind", "mimeType", "bytes"}`. It has a limit of its own, the largest file WhatsApp
//!   carries (a 100 MiB document), above the API's 1 MiB.

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::TryStreamExt;
use tower_http::limit::RequestBodyLimitLayer;
use uuid::Uuid;
use waflow_jobs::{Error, content::media_types::MAX_UPLOAD_BYTES, messaging::media::NewMedia};

use crate::{auth::Caller, rest_error::RestError, state::AppState};

/// The media's bytes, or 404 `NOT_FOUND` (an unknown or foreign message, media past Meta's 30
/// days), 502 `PROVIDER_ERROR` when Meta fails.
pub async fn media(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Response, RestError> {
    let message_id = Uuid::parse_str(&id).map_err(|_| Error::NotFound("message"))?;
    let download = state
        .services
        .messaging()
        .media(principal.workspace_id, message_id)
        .await?;
    let size = download.size;
    let mut response = (
        [(header::CONTENT_TYPE, download.content_type.clone())],
        Body::from_stream(download.into_stream()),
    )
        .into_response();
    if let Some(size) = size {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, size.into());
    }
    Ok(response)
}

/// Routes with a body limit of their own; merged after the API-wide limit.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/senders/{id}/media", post(upload))
        // A byte over the largest file, so the service names the limit the file broke.
        .layer(RequestBodyLimitLayer::new(MAX_UPLOAD_BYTES as usize + 1))
}

#[derive(serde::Deserialize)]
pub struct UploadOptions {
    filename: Option<String>,
}

/// `{"id", "kind", "mimeType", "bytes"}`, or 404 `SENDER_NOT_FOUND`, 400 `VALIDATION_FAILED`
/// (a type or size WhatsApp does not carry), 502 `PROVIDER_ERROR` when Meta refuses the file.
async fn upload(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    options: Result<Query<UploadOptions>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    let Query(options) = options?;
    let sender_id = Uuid::parse_str(&id).map_err(|_| Error::SenderNotFound(id))?;
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let media = NewMedia {
        content_type: header(header::CONTENT_TYPE).unwrap_or_default().to_owned(),
        filename: options.filename,
        length: header(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        body: body.into_data_stream().map_err(std::io::Error::other),
    };
    let uploaded = state
        .services
        .messaging()
        .upload_media(principal.workspace_id, sender_id, media)
        .await?;
    Ok((StatusCode::OK, Json(uploaded)).into_response())
}
