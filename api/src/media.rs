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
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::TryStreamExt;
use tower_http::limit::RequestBodyLimitLayer;
use uuid::Uuid;
use waflow_jobs::{Error, content::media_types::MAX_UPLOAD_BYTES, messaging::media::NewMedia};

use crate::{
    AppState,
    export::{authenticate, refuse},
};

pub async fn media(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let principal = match authenticate(&state, peer, &headers).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let Ok(message_id) = Uuid::parse_str(&id) else {
        return refuse(StatusCode::NOT_FOUND, "NOT_FOUND", "message not found");
    };
    let download = match state
        .services
        .messaging()
        .media(principal.workspace_id, message_id)
        .await
    {
        Ok(download) => download,
        Err(error) => {
            let status = match &error {
                Error::NotFound(_) => StatusCode::NOT_FOUND,
                Error::Provider { .. } => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return refuse(status, error.code(), &error.public_message());
        }
    };
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
    response
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

async fn upload(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(options): Query<UploadOptions>,
    body: Body,
) -> Response {
    let principal = match authenticate(&state, peer, &headers).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let Ok(sender_id) = Uuid::parse_str(&id) else {
        let error = Error::SenderNotFound(id);
        return refuse(StatusCode::NOT_FOUND, error.code(), &error.public_message());
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let media = NewMedia {
        content_type: header(header::CONTENT_TYPE).unwrap_or_default().to_owned(),
        filename: options.filename,
        length: header(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        body: body.into_data_stream().map_err(std::io::Error::other),
    };
    match state
        .services
        .messaging()
        .upload_media(principal.workspace_id, sender_id, media)
        .await
    {
        Ok(uploaded) => (StatusCode::OK, Json(uploaded)).into_response(),
        Err(error) => {
            let status = match &error {
                Error::SenderNotFound(_) => StatusCode::NOT_FOUND,
                Error::Validation(_) => StatusCode::BAD_REQUEST,
                Error::Provider { .. } => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            refuse(status, error.code(), &error.public_message())
        }
    }
}
