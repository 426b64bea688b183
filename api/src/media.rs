//! `GET /api/messages/{id}/media`: a received message's image, video, audio, document or
//! sticker, streamed from Meta with its content type. The sender's access token is used on the
//! server only; the caller sees the bytes, never Meta's URL.

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use uuid::Uuid;
use waflow_jobs::Error;

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
