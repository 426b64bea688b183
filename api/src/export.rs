//! `GET /api/conversations/export?endedAfter=RFC3339`: every ended conversation of the workspace
//! as NDJSON, one conversation-ended payload per line, oldest first. The body is streamed batch
//! by batch from the database, so an export of any size holds one batch in memory.

use axum::{
    Json,
    body::Body,
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use futures::stream;
use serde::Deserialize;
use uuid::Uuid;

use crate::{AppState, app::bearer};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportQuery {
    ended_after: Option<String>,
}

pub(crate) fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, Json(body)).into_response()
}

/// The caller's key, or the refusal of the REST endpoints (401, 429, 503).
pub(crate) async fn authenticate(
    state: &AppState,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
) -> Result<waflow_jobs::api_keys::Principal, Response> {
    crate::auth::authenticate(state, peer.ip(), bearer(headers))
        .await
        .map_err(IntoResponse::into_response)
}

pub async fn export(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<ExportQuery>,
) -> Response {
    let principal = match authenticate(&state, peer, &headers).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let ended_after = match query
        .ended_after
        .as_deref()
        .map(DateTime::parse_from_rfc3339)
        .transpose()
    {
        Ok(at) => at.map(|at| at.with_timezone(&Utc)),
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "VALIDATION_FAILED",
                "endedAfter: must be an RFC 3339 time like 2026-01-31T00:00:00Z",
            );
        }
    };
    let services = state.services.clone();
    let workspace_id = principal.workspace_id;
    // State: the last id sent, and whether the previous batch was the last.
    let lines = stream::unfold((None::<Uuid>, false), move |(after, done)| {
        let services = services.clone();
        async move {
            if done {
                return None;
            }
            match services
                .conversations()
                .export_batch(workspace_id, ended_after, after)
                .await
            {
                Ok(batch) if batch.is_empty() => None,
                Ok(batch) => {
                    let last = batch.last().map(|(id, _)| *id);
                    let finished =
                        (batch.len() as u64) < waflow_jobs::messaging::conversations::EXPORT_BATCH;
                    let mut chunk = String::new();
                    for (_, payload) in batch {
                        chunk.push_str(&payload.to_string());
                        chunk.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(chunk), (last, finished)))
                }
                Err(error) => {
                    // Mid-stream the status is already sent: cut the body so the client sees an
                    // incomplete export rather than a silently short one.
                    tracing::error!(?error, "conversation export failed");
                    Some((Err(std::io::Error::other("export failed")), (after, true)))
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
