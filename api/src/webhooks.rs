//! `/webhooks/whatsapp`: Meta's subscription handshake (GET) and event deliveries (POST).
//! Meta retries anything but a 2xx, so the status codes here decide what is retried: a bad
//! signature or a malformed body never will be (4xx); a database outage will be (503).

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

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/whatsapp", get(verify).post(receive))
}

async fn verify(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query.get("hub.verify_token").map(String::as_str);
    match webhook::verify_subscription(&state.services, mode, token).await {
        Ok(true) => (
            StatusCode::OK,
            query.get("hub.challenge").cloned().unwrap_or_default(),
        )
            .into_response(),
        Ok(false) => StatusCode::FORBIDDEN.into_response(),
        Err(error) => {
            tracing::error!(%error, "webhook verification failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    let outcome = match webhook::verify_signature(&state.services, &body, signature).await {
        Ok(senders) => webhook::process(&state.services, &senders, &body).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(report) => {
            tracing::debug!(?report, "WhatsApp webhook processed");
            (StatusCode::OK, "ok").into_response()
        }
        Err(WebhookError::BadSignature) => {
            tracing::warn!("WhatsApp webhook with a missing or wrong signature refused");
            (StatusCode::UNAUTHORIZED, "invalid signature").into_response()
        }
        Err(WebhookError::Malformed(reason)) => {
            tracing::warn!(%reason, "malformed WhatsApp webhook refused");
            (StatusCode::BAD_REQUEST, "malformed payload").into_response()
        }
        Err(WebhookError::Service(error)) => {
            tracing::error!(?error, "WhatsApp webhook failed; Meta will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later").into_response()
        }
    }
}
