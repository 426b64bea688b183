//! The one error answer of every endpoint that is not GraphQL (exports, imports, media, flow
//! hooks, Meta's webhook) and of the refusals before GraphQL runs (a wrong key, a malformed
//! request): a status and a GraphQL-shaped JSON body, so a client parses one shape everywhere.
//!
//! ```json
//! {"errors": [{"message": "sender 42 not found", "extensions": {"code": "SENDER_NOT_FOUND"}}]}
//! ```
//!
//! `extensions.code` is the stable code of `waflow_jobs::Error::code()` (or one of the HTTP
//! layer's own: `BAD_REQUEST`, `FORBIDDEN`, `METHOD_NOT_ALLOWED`, `NOT_ACCEPTABLE`,
//! `PAYLOAD_TOO_LARGE`, `UNSUPPORTED_MEDIA_TYPE`, `UNAVAILABLE`). A service error gets its status
//! from one mapping, [`RestError`]'s `From<waflow_jobs::Error>`, so the same error has the same
//! status on every endpoint; the README's "Errors of the REST endpoints" table lists it.

use axum::{
    Json,
    extract::rejection::QueryRejection,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use waflow_jobs::{Error, FieldError};

/// An error answer: its status, stable code and the message a client may see.
#[derive(Debug)]
pub struct RestError {
    pub status: StatusCode,
    /// The stable code clients switch on (`extensions.code`).
    pub code: &'static str,
    /// Safe to show: internal details stay in the logs.
    pub message: String,
    /// Seconds to wait before trying again: the `Retry-After` header and
    /// `extensions.retryAfterSeconds`.
    pub retry_after: Option<u64>,
    /// The offending input fields of a `VALIDATION_FAILED` error (`extensions.fields`).
    pub fields: Vec<FieldError>,
}

impl RestError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            fields: Vec::new(),
        }
    }

    /// 400 `BAD_REQUEST`: the request is not one this endpoint understands (as opposed to
    /// `VALIDATION_FAILED`, a well-formed request with a value the service refuses).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 503 `UNAVAILABLE`: a dependency is down and nothing ran, so the same request may be sent
    /// again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    /// 429 `RATE_LIMITED` with `Retry-After: seconds`.
    pub fn rate_limited(seconds: u64, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message)
        }
    }
}

/// The status of each service error: the one mapping every endpoint shares.
fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::Validation(_)
        | Error::InvalidPhoneNumber { .. }
        | Error::TemplateVariablesMismatch { .. }
        | Error::TemplateParameterInvalid { .. }
        | Error::MessageTooLong { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthenticated => StatusCode::UNAUTHORIZED,
        Error::NotFound(_) | Error::SenderNotFound(_) | Error::TemplateNotFound { .. } => {
            StatusCode::NOT_FOUND
        }
        // The request is well formed; the state of the sender, template or customer refuses it.
        Error::SenderOffline { .. }
        | Error::TemplateNotApproved { .. }
        | Error::OutsideWindow(_)
        | Error::RecipientOptedOut
        | Error::SenderQualityLow => StatusCode::CONFLICT,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable { .. } | Error::SendersChanged => StatusCode::SERVICE_UNAVAILABLE,
        Error::Provider { .. } => StatusCode::BAD_GATEWAY,
        Error::SendFailed { cause, .. } => status_of(cause),
        // Most often the database is out of reach: the client may try again.
        Error::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for RestError {
    fn from(error: Error) -> Self {
        if matches!(error, Error::Database(_) | Error::Internal(_)) {
            tracing::error!(?error, "request failed");
        }
        let mut rest = Self::new(status_of(&error), error.code(), error.public_message());
        match error {
            Error::RateLimited {
                retry_after_seconds,
            }
            | Error::Unavailable {
                retry_after_seconds,
                ..
            } => rest.retry_after = Some(retry_after_seconds),
            Error::Validation(fields) => rest.fields = fields,
            _ => {}
        }
        rest
    }
}

/// A query string that does not fit the endpoint's parameters (a repeated `filename`, say).
impl From<QueryRejection> for RestError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let mut extensions = json!({"code": self.code});
        if let Some(seconds) = self.retry_after {
            extensions["retryAfterSeconds"] = seconds.into();
        }
        if !self.fields.is_empty() {
            extensions["fields"] = json!(self.fields);
        }
        let body = json!({"errors": [{"message": self.message, "extensions": extensions}]});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: RestError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_service_error_has_one_status_and_the_graphql_shape() {
        let (status, body) = body_of(Error::field("endedAfter", "must be a time").into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"errors": [{"message": "endedAfter: must be a time", "extensions": {
                "code": "VALIDATION_FAILED",
                "fields": [{"field": "endedAfter", "message": "must be a time"}]}}]})
        );
        let (status, body) = body_of(Error::SenderNotFound("x".into()).into()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["errors"][0]["extensions"]["code"], "SENDER_NOT_FOUND");
    }

    #[tokio::test]
    async fn internal_details_stay_out_and_rate_limits_say_when() {
        let (status, body) = body_of(Error::Internal("secret SQL".into()).into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["errors"][0]["message"], "internal error");
        let response = RestError::from(Error::RateLimited {
            retry_after_seconds: 7,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let response = RestError::from(Error::Unavailable {
            reason: "the flow queue is behind".into(),
            retry_after_seconds: 15,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "15");
        let (_, body) = body_of(
            Error::Unavailable {
                reason: "the flow queue is behind".into(),
                retry_after_seconds: 15,
            }
            .into(),
        )
        .await;
        assert_eq!(
            body["errors"][0]["extensions"],
            json!({"code": "UNAVAILABLE", "retryAfterSeconds": 15})
        );
    }
}
