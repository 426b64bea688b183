//! Collects every problem of an input at once, so a client fixes a form in one round trip.

use crate::error::{Error, FieldError};

#[derive(Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records a problem when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }

    /// A required, trimmed, length-bounded text.
    pub fn text(&mut self, field: &str, value: &str, max_chars: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        } else if value.chars().count() > max_chars {
            self.add(field, format!("must be at most {max_chars} characters"));
        }
    }

    /// An `http://` or `https://` URL.
    pub fn url(&mut self, field: &str, value: &str) {
        let ok = (value.starts_with("https://") || value.starts_with("http://"))
            && value.len() > "https://".len()
            && !value.contains(char::is_whitespace);
        self.check(ok, field, "must be an http:// or https:// URL");
    }

    /// A URL Waflow will call: http(s), and not inside the server's own networks (the egress
    /// policy, `crate::egress`).
    pub fn outgoing_url(&mut self, egress: &crate::egress::Egress, field: &str, value: &str) {
        if let Err(refused) = egress.check_url(value) {
            self.add(field, refused.0);
        }
    }

    pub fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        self.check(
            (min..=max).contains(&value),
            field,
            format!("must be between {min} and {max}"),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes in another list's problems.
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    pub fn into_result(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

/// The size of `value` written as JSON, without writing it anywhere: for limits on what is
/// stored (a run's state, a contact's attributes).
pub fn json_size(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
