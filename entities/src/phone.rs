//! E.164 phone numbers, parsed once at the edge so the rest of the code can trust them.

use std::fmt;

/// A phone number in E.164 form (`+14155551234`): a leading `+`, the country code and the
/// national number, nothing else. Only numbers the numbering plan says are valid are accepted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct E164(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid phone number in E.164 format (like +14155551234): {reason}")]
pub struct InvalidPhoneNumber {
    pub input: String,
    pub reason: &'static str,
}

impl E164 {
    /// Parses user input. Spaces, dashes, dots and parentheses between the digits are tolerated
    /// (people paste `+1 (415) 555-1234`), but the country code is required: without a leading
    /// `+` a number like `07123456789` is ambiguous, and WhatsApp cannot route it.
    pub fn parse(input: &str) -> Result<Self, InvalidPhoneNumber> {
        let invalid = |reason| InvalidPhoneNumber {
            input: input.to_owned(),
            reason,
        };
        let trimmed = input.trim();
        if !trimmed.starts_with('+') {
            return Err(invalid("it must start with + and the country code"));
        }
        if trimmed[1..]
            .chars()
            .any(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')')))
        {
            return Err(invalid("it may contain only digits after the +"));
        }
        let number =
            phonenumber::parse(None, trimmed).map_err(|_| invalid("it cannot be parsed"))?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid(
                "no such number exists in its country's numbering plan",
            ));
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as WhatsApp's Cloud API wants it in `to`: digits only, no `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_examples() {
        assert_eq!(
            E164::parse("+14155551234").unwrap().as_str(),
            "+14155551234"
        );
        assert_eq!(
            E164::parse("+442071234567").unwrap().as_str(),
            "+442071234567"
        );
        assert_eq!(
            E164::parse(" +1 (415) 555-1234 ").unwrap().as_str(),
            "+14155551234"
        );
        assert_eq!(E164::parse("+14155551234").unwrap().digits(), "14155551234");
    }

    #[test]
    fn refuses_the_documented_counter_examples() {
        for bad in [
            "(415) 555-1234",
            "07123456789",
            "",
            "+",
            "+1415abc1234",
            "+999123",
            "+1 555",
        ] {
            assert!(E164::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
