//! Whom a message is for, as a user, a flow or a webhook names them: an E.164 number or Meta's
//! business-scoped user id (BSUID). A customer who adopted a WhatsApp username may hide their
//! number from businesses; the BSUID is then the only way to reach them.
//!
//! Source: Meta, "Business-scoped user IDs"
//! (<https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids>):
//! a BSUID is a two-letter ISO country code, a period, and up to 128 alphanumeric characters
//! (`US.13491208655302741918`); a parent BSUID has `ENT.` after the country
//! (`US.ENT.11815799212886844830`). Messages to one set `recipient` in place of `to`.

use std::fmt;

use crate::{E164, InvalidPhoneNumber};

/// A customer's number or business-scoped user id, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CustomerAddress {
    Phone(E164),
    UserId(String),
}

impl CustomerAddress {
    /// A BSUID when `input` has a BSUID's shape, else a phone number (`E164::parse`, whose
    /// error this returns).
    pub fn parse(input: &str) -> Result<Self, InvalidPhoneNumber> {
        let trimmed = input.trim();
        if is_user_id(trimmed) {
            return Ok(Self::UserId(trimmed.to_owned()));
        }
        E164::parse(trimmed).map(Self::Phone)
    }

    /// An address Waflow itself wrote (a contact's stored number or user id, a trigger's
    /// `customer_phone`): as `parse`, but a number WhatsApp vouched for when it was stored
    /// (`E164::from_wa_id`) passes even where the numbering plan does not know it.
    pub fn parse_known(input: &str) -> Result<Self, InvalidPhoneNumber> {
        Self::parse(input).or_else(|refused| {
            let digits = input.trim().strip_prefix('+').ok_or(refused.clone())?;
            E164::from_wa_id(digits)
                .map(Self::Phone)
                .map_err(|_| refused)
        })
    }

    pub fn phone(&self) -> Option<&E164> {
        match self {
            Self::Phone(phone) => Some(phone),
            Self::UserId(_) => None,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::UserId(id) => Some(id),
            Self::Phone(_) => None,
        }
    }
}

impl fmt::Display for CustomerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Phone(phone) => phone.fmt(f),
            Self::UserId(id) => f.write_str(id),
        }
    }
}

/// Whether `s` has the shape of a (parent) BSUID.
pub fn is_user_id(s: &str) -> bool {
    let Some((country, rest)) = s.split_once('.') else {
        return false;
    };
    let id = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_and_numbers_are_told_apart() {
        for id in [
            "US.13491208655302741918",
            "BR.1502576394655843",
            "US.ENT.11815799212886844830",
        ] {
            assert_eq!(
                CustomerAddress::parse(id).unwrap(),
                CustomerAddress::UserId(id.into())
            );
        }
        assert_eq!(
            CustomerAddress::parse("+14155550123").unwrap().to_string(),
            "+14155550123"
        );
        for bad in ["us.123", "USA.123", "US.", "US.12-3", "14155550123", ""] {
            assert!(CustomerAddress::parse(bad).is_err(), "{bad:?}");
            assert!(CustomerAddress::parse_known(bad).is_err(), "{bad:?}");
        }
        // A number WhatsApp gave that the numbering plan does not know: only as a known one.
        assert!(CustomerAddress::parse("+15550783881").is_err());
        assert_eq!(
            CustomerAddress::parse_known("+15550783881")
                .unwrap()
                .to_string(),
            "+15550783881"
        );
    }
}
