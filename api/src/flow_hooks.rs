//! `POST /hooks/flows/{flowId}`: an inbound webhook that starts a run of a flow whose trigger is
//! `webhook` (a form submission, a dialer's "call completed"). The JSON body is the trigger
//! payload. The flow's secret comes as `Authorization: Bearer <secret>`, an `X-Waflow-Secret`
//! header, or `?secret=` for tools that can set neither.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;
use uuid::Uuid;
use waflow_jobs::Error;

use crate::{auth::bearer, rest_error::RestError, state::AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/hooks/flows/{flow_id}", post(receive))
}

/// 202 `{"runId"}`, or: 401 `UNAUTHENTICATED` for an unknown flow or a wrong secret alike (429
/// `RATE_LIMITED` after too many), 404 `NOT_FOUND` for an id that is not one, 400
/// `VALIDATION_FAILED` for a body that is not JSON or a flow that is not enabled with a webhook
/// trigger, 508 Loop Detected (code `VALIDATION_FAILED`) for a chain of runs too long, 503
/// `UNAVAILABLE` with `Retry-After` (seconds) and no run started while the flow queue's oldest
/// ready job has waited longer than `WAFLOW_MAX_RUN_BACKLOG_SECONDS`
/// (`waflow_jobs::queue_stats::RunBacklog`).
async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(flow_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    let secret = bearer(&headers)
        .or_else(|| headers.get("x-waflow-secret").and_then(|v| v.to_str().ok()))
        .or(query.get("secret").map(String::as_str))
        .unwrap_or_default();
    let flow_id = Uuid::parse_str(&flow_id)
        .map_err(|_| RestError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such flow"))?;
    let payload = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            RestError::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_FAILED",
                format!("the body is not JSON: {e}"),
            )
        })?
    };
    // Set by Waflow's own http_request steps: how long the chain of runs behind this call is.
    let hop = headers
        .get(waflow_jobs::flows::limits::HOP_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    match state
        .services
        .flows()
        .inbound_webhook(flow_id, secret, payload, hop)
        .await
    {
        Ok(run) => Ok((StatusCode::ACCEPTED, Json(json!({"runId": run.id}))).into_response()),
        Err(Error::Unauthenticated) | Err(Error::NotFound(_)) => {
            // One answer for both: a caller without the secret learns nothing about the flow.
            // Counted against the caller's address like a wrong API key.
            let refusal = state.auth.note_failure(peer.ip(), Error::Unauthenticated);
            if refusal.status == StatusCode::TOO_MANY_REQUESTS {
                return Err(refusal);
            }
            Err(RestError {
                message: "unknown flow or wrong secret".into(),
                ..refusal
            })
        }
        // A chain of flows calling each other: 508 Loop Detected (RFC 5842).
        Err(Error::Validation(fields)) if fields.iter().any(|f| f.field == "X-Waflow-Hop") => {
            let message = fields[0].message.clone();
            Err(RestError::new(
                StatusCode::LOOP_DETECTED,
                "VALIDATION_FAILED",
                message,
            ))
        }
        Err(error) => Err(error.into()),
    }
}
