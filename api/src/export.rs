//! `GET /api/conversations/export?endedAfter=RFC3339`: every ended conversation of the workspace
//! as NDJSON, one conversation-ended payload per line, oldest first. The body is streamed batch
//! by batch from the database, so an export of any size holds one batch in memory.

use axum::{
    body::Body,
    extract::{Query, State, rejection::QueryRejection},
    http::header,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use futures::stream;
use serde::Deserialize;
use uuid::Uuid;
use waflow_jobs::Error;

use crate::{auth::Caller, rest_error::RestError, state::AppState};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportQuery {
    ended_after: Option<String>,
}

/// The NDJSON stream, or before it starts 400 `VALIDATION_FAILED` for an `endedAfter` that is
/// not a time (and the refusals of [`Caller`]).
pub async fn export(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, RestError> {
    let Query(query) = query?;
    let ended_after = query
        .ended_after
        .as_deref()
        .map(DateTime::parse_from_rfc3339)
        .transpose()
        .map_err(|_| {
            Error::field(
                "endedAfter",
                "must be an RFC 3339 time like 2026-01-31T00:00:00Z",
            )
        })?
        .map(|at| at.with_timezone(&Utc));
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
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
