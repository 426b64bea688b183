//! The errors a user of Waflow can see, each with the stable code the README's Errors section
//! lists.
//! Faces map them to their own wire format (GraphQL `extensions.code`, HTTP status) in one place.

use sea_orm::DbErr;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem with one input field, named by its path in the request (`cloudApi.accessToken`,
/// `components.buttons[1].url`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", join_fields(.0))]
    Validation(Vec<FieldError>),
    #[error("{field}: {source}")]
    InvalidPhoneNumber {
        field: String,
        #[source]
        source: waflow_entities::InvalidPhoneNumber,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("sender {0} not found")]
    SenderNotFound(String),
    #[error("missing or invalid API key: send `Authorization: Bearer <key>`")]
    Unauthenticated,
    #[error("sender is offline: {reason}")]
    SenderOffline { reason: String },
    #[error("no template {name:?} in language {language:?} for this sender")]
    TemplateNotFound { name: String, language: String },
    #[error("template {name:?} is {status}, not APPROVED")]
    TemplateNotApproved { name: String, status: String },
    #[error("template {name:?} takes {expected} variable(s) ({names}), {given} given")]
    TemplateVariablesMismatch {
        name: String,
        expected: usize,
        names: String,
        given: String,
    },
    /// A header or button parameter is missing, surplus, of the wrong kind or past Meta's
    /// limits (see `content::template_parameters`).
    #[error("template {name:?}: {component} {problem}")]
    TemplateParameterInvalid {
        name: String,
        component: String,
        problem: String,
    },
    #[error("text is {length} characters; WhatsApp allows at most 4096")]
    MessageTooLong { length: usize },
    #[error("{0}")]
    OutsideWindow(WindowClosed),
    #[error("the recipient opted out of marketing messages")]
    RecipientOptedOut,
    #[error(
        "the sender's quality rating is RED: marketing templates are paused until it recovers \
         (or set allowMarketingOnLowQuality on the sender)"
    )]
    SenderQualityLow,
    #[error("the sender's rate limit is reached; retry in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    /// Waflow itself cannot take the request now and did nothing (the flow queue is too far
    /// behind, `queue_stats::RunBacklog`): the same request may be sent again after
    /// `retry_after_seconds`.
    #[error("{reason}; try again in {retry_after_seconds} s")]
    Unavailable {
        reason: String,
        retry_after_seconds: u64,
    },
    /// A provider (Meta's Cloud API, a model API) refused, failed or could not be reached;
    /// `message` says which and how.
    #[error("{message}{}", .code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Provider {
        code: Option<String>,
        message: String,
    },
    /// A send that was stored and then failed at the provider: the cause, and the FAILED message.
    #[error("{cause}")]
    SendFailed {
        message_id: uuid::Uuid,
        cause: Box<Error>,
    },
    /// The Cloud API senders changed after a WhatsApp webhook delivery was verified against this
    /// process's copy of them: the delivery is verified again (`messaging::webhook::handle`),
    /// and only if they keep changing does Meta get a 503 and deliver it later.
    #[error("the senders changed while a webhook delivery was handled")]
    SendersChanged,
    #[error("database error")]
    Database(#[from] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a free-form message cannot go: the customer service window is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowClosed {
    /// When the window closed; `None` when the customer never wrote to this sender.
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl std::fmt::Display for WindowClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.closed_at {
            Some(at) => write!(
                f,
                "the 24-hour window closed at {}: send an approved template instead",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => f.write_str(
                "the customer has never written to this sender, so no 24-hour window is open: send an approved template instead",
            ),
        }
    }
}

fn join_fields(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "VALIDATION_FAILED",
            Error::InvalidPhoneNumber { .. } => "INVALID_PHONE_NUMBER",
            Error::NotFound(_) => "NOT_FOUND",
            Error::SenderNotFound(_) => "SENDER_NOT_FOUND",
            Error::Unauthenticated => "UNAUTHENTICATED",
            Error::SenderOffline { .. } => "SENDER_OFFLINE",
            Error::TemplateNotFound { .. } => "TEMPLATE_NOT_FOUND",
            Error::TemplateNotApproved { .. } => "TEMPLATE_NOT_APPROVED",
            Error::TemplateVariablesMismatch { .. } | Error::TemplateParameterInvalid { .. } => {
                "TEMPLATE_VARIABLES_MISMATCH"
            }
            Error::MessageTooLong { .. } => "MESSAGE_TOO_LONG",
            Error::OutsideWindow(_) => "OUTSIDE_24H_WINDOW",
            Error::RecipientOptedOut => "RECIPIENT_OPTED_OUT",
            Error::SenderQualityLow => "SENDER_QUALITY_LOW",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Unavailable { .. } | Error::SendersChanged => "UNAVAILABLE",
            Error::Provider { .. } => "PROVIDER_ERROR",
            Error::SendFailed { cause, .. } => cause.code(),
            Error::Database(_) | Error::Internal(_) => "INTERNAL",
        }
    }

    /// A provider (Meta, a model) refused or failed: `code` is the provider's own error code
    /// when it gave one, `message` what a user may read (never a credential or a URL with one).
    pub fn provider(code: Option<String>, message: impl Into<String>) -> Self {
        Error::Provider {
            code,
            message: message.into(),
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    pub fn phone(field: impl Into<String>, source: waflow_entities::InvalidPhoneNumber) -> Self {
        Error::InvalidPhoneNumber {
            field: field.into(),
            source,
        }
    }

    /// The message safe to show a client: internal details (SQL, driver errors) stay in the logs.
    pub fn public_message(&self) -> String {
        match self {
            Error::Database(_) | Error::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// A unique-constraint violation becomes a validation error on `field`; anything else stays
    /// a database error. Used where a concurrent insert can win the race a pre-check lost.
    pub fn from_unique_violation(err: DbErr, field: &str, message: &str) -> Self {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Error::field(field, message),
            _ => Error::Database(err),
        }
    }
}
