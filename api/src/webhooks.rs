//! `/webhooks/whatsapp`: Meta's subscription handshake (GET) and event deliveries (POST).
//! Meta retries anything but a 2xx, so the status codes here decide what is retried: a bad
//! signature or a malformed body never will be (4xx); a database outage will be (503). Meta
//! reads only the status; the bodies are the API's one error shape all the same.

use std::collections::HashMap;

use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use waflow_jobs::messaging::webhook::{self, WebhookError};

use crate::{rest_error::RestError, state::AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/whatsapp", get(verify).post(receive))
}

/// The subscription handshake: `hub.challenge` back (200) when `hub.mode` is `subscribe` and
/// `hub.verify_token` a connected sender's, else 403 `FORBIDDEN`; 503 `UNAVAILABLE` when the
/// database cannot say.
async fn verify(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, RestError> {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query.get("hub.verify_token").map(String::as_str);
    match webhook::verify_subscription(&state.services, mode, token).await {
        Ok(true) => Ok((
            StatusCode::OK,
            query.get("hub.challenge").cloned().unwrap_or_default(),
        )
            .into_response()),
        Ok(false) => Err(RestError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "not a subscription request with a connected sender's verify token",
        )),
        Err(error) => {
            tracing::error!(%error, "webhook verification failed");
            Err(RestError::unavailable("try again later"))
        }
    }
}

/// An event delivery: 200 once stored; 401 `UNAUTHENTICATED` for a missing or wrong
/// signature, 400 `VALIDATION_FAILED` for a body that is not a delivery (neither retried by
/// Meta), 503 `UNAVAILABLE` when it could not be stored (retried).
async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    match webhook::handle(&state.services, &body, signature).await {
        Ok(report) => {
            tracing::debug!(?report, "WhatsApp webhook processed");
            Ok((StatusCode::OK, "ok").into_response())
        }
        Err(WebhookError::BadSignature) => {
            tracing::warn!("WhatsApp webhook with a missing or wrong signature refused");
            Err(RestError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "invalid signature",
            ))
        }
        Err(WebhookError::Malformed(reason)) => {
            tracing::warn!(%reason, "malformed WhatsApp webhook refused");
            Err(RestError::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_FAILED",
                "malformed payload",
            ))
        }
        Err(WebhookError::Service(error)) => {
            // Whatever failed, Meta must retry: 503, not the error's own status.
            tracing::error!(?error, "WhatsApp webhook failed; Meta will retry");
            Err(RestError::unavailable("try again later"))
        }
    }
}
