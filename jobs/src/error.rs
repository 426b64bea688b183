//! The errors a user of Waflow can see, each with the stable code of DESIGN.md's API conventions.
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
    #[error("database error")]
    Database(#[from] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
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
            Error::Database(_) | Error::Internal(_) => "INTERNAL",
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
