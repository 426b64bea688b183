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
        let given = number.format().mode(phonenumber::Mode::E164).to_string();
        // The number as parsed, not its E.164 text parsed again: parsing is most of the cost
        // of a row of a contact import.
        if phonenumber::is_valid(&number) {
            return Ok(Self(given));
        }
        // A WhatsApp id typed in (Mexico's `521…`) stands for the dialable number.
        match whatsapp::dialable(&given[1..]) {
            Some(dialable) => Ok(Self(format!("+{dialable}"))),
            None => Err(invalid(
                "no such number exists in its country's numbering plan",
            )),
        }
    }

    /// The customer with WhatsApp id `wa_id` (digits, as Meta's webhooks give it), as the
    /// dialable number: a WhatsApp id is a mobile's, so where a country has two forms the
    /// mobile one is taken (Brazil's ninth digit, Argentina's 9, Mexico without the 1).
    ///
    /// WhatsApp vouches for its ids: one that our numbering-plan data does not know (a range
    /// opened after the data was published) is still a reachable customer, so it is kept as
    /// given when its country code is known and its length is E.164's. Only what cannot be a
    /// number at all is refused.
    pub fn from_wa_id(wa_id: &str) -> Result<Self, InvalidPhoneNumber> {
        let digits = wa_id.trim().trim_start_matches('+');
        if let Some(dialable) = whatsapp::dialable(digits) {
            return Ok(Self(format!("+{dialable}")));
        }
        let given = format!("+{digits}");
        Self::parse(&given).or_else(|refused| {
            let plausible = (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && phonenumber::parse(None, &given).is_ok();
            if plausible {
                Ok(Self(given))
            } else {
                Err(refused)
            }
        })
    }

    /// Every form in which this customer may be stored or written (this one first): in most
    /// countries only this one; where WhatsApp's ids differ from dialable numbers, both.
    pub fn equivalents(&self) -> Vec<String> {
        let mut forms = vec![self.0.clone()];
        forms.extend(
            whatsapp::other_forms(self.digits())
                .into_iter()
                .map(|d| format!("+{d}"))
                .filter(|f| *f != self.0),
        );
        forms
    }

    /// One key for all the forms of this customer (the least of `equivalents`): two numbers are
    /// the same customer when their keys are equal.
    pub fn customer_key(&self) -> String {
        self.equivalents()
            .into_iter()
            .min()
            .expect("a number is one of its own forms")
    }

    /// The id WhatsApp knows this customer by, for a message's `to` when no id was learned
    /// from the customer: the number itself, except in the countries of `whatsapp`.
    pub fn whatsapp_id(&self) -> String {
        whatsapp::id_of(self.digits()).unwrap_or_else(|| self.digits().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as WhatsApp's Cloud API wants it in `to`: digits only, no `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

fn is_valid(e164: &str) -> bool {
    phonenumber::parse(None, e164).is_ok_and(|n| phonenumber::is_valid(&n))
}

/// Where WhatsApp's id for a customer (`wa_id`) is not the dialable number. Each rule maps the
/// digits of either form to the other; numbers of other countries have one form.
///
/// - Mexico (52): mobile ids kept the `1` Mexico once dialled before mobile numbers from
///   abroad: id `521` + 10 digits, dialable `+52` + the 10 digits.
/// - Argentina (54): mobile numbers are dialled from abroad with a `9` after the country code,
///   and that is the id: `549` + 10 digits. The same number written without the `9` (`+54` + 10
///   digits, as a business may have it) is the same customer.
/// - Brazil (55): mobile numbers gained a ninth digit (a `9` after the two-digit area code,
///   2012–2016). Ids of accounts in area codes 11–19, 21, 22, 24, 27 and 28 have it; elsewhere
///   ids kept the old eight digits: `55` + area + 8 digits for the dialable
///   `+55` + area + `9` + 8 digits.
///
/// Sources: Meta's Cloud API answers both forms (`contacts[].input` and `wa_id`); providers'
/// notes on these three countries (Gupshup, Zoho, 360dialog), which agree.
mod whatsapp {
    /// Brazil's area codes whose WhatsApp ids have the ninth digit.
    const BRAZIL_NINE: [&str; 14] = [
        "11", "12", "13", "14", "15", "16", "17", "18", "19", "21", "22", "24", "27", "28",
    ];

    /// The same customer's other form, if the number is of a country with two.
    pub fn other_forms(digits: &str) -> Vec<String> {
        let all = |ds: &str| ds.bytes().all(|b| b.is_ascii_digit());
        if !all(digits) {
            return Vec::new();
        }
        match (digits.get(..2), digits.len()) {
            (Some("52"), 13) if &digits[2..3] == "1" => vec![format!("52{}", &digits[3..])],
            (Some("52"), 12) => vec![format!("521{}", &digits[2..])],
            (Some("54"), 13) if &digits[2..3] == "9" => vec![format!("54{}", &digits[3..])],
            (Some("54"), 12) if &digits[2..3] != "9" => vec![format!("549{}", &digits[2..])],
            (Some("55"), 13) if &digits[4..5] == "9" => {
                vec![format!("55{}{}", &digits[2..4], &digits[5..])]
            }
            (Some("55"), 12) => vec![format!("55{}9{}", &digits[2..4], &digits[4..])],
            _ => Vec::new(),
        }
    }

    /// The dialable form of digits given in either form, when the country has two and the
    /// dialable one is a valid number.
    pub fn dialable(digits: &str) -> Option<String> {
        let candidate = match (digits.get(..2), digits.len()) {
            // Mexico: without the 1.
            (Some("52"), 13) => other_forms(digits).into_iter().next()?,
            // Argentina and Brazil: with the 9.
            (Some("54"), 12) | (Some("55"), 12) => other_forms(digits).into_iter().next()?,
            (Some("52" | "54" | "55"), _) => digits.to_owned(),
            _ => return None,
        };
        super::is_valid(&format!("+{candidate}")).then_some(candidate)
    }

    /// The id WhatsApp gives the customer with this dialable number, where it differs.
    pub fn id_of(digits: &str) -> Option<String> {
        match (digits.get(..2), digits.len()) {
            (Some("52"), 12) | (Some("54"), 12) => other_forms(digits).into_iter().next(),
            (Some("55"), 13) if !BRAZIL_NINE.contains(&&digits[2..4]) => {
                other_forms(digits).into_iter().next()
            }
            _ => None,
        }
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

    /// Each country with two forms, both directions: (WhatsApp id, dialable number, the id
    /// Waflow sends to when it learned none).
    #[test]
    fn whatsapp_ids_and_dialable_numbers_are_one_customer() {
        for (wa_id, dialable, send_to) in [
            // Mexico: the old 1 of mobiles.
            ("5215555550123", "+525555550123", "5215555550123"),
            ("5213312345678", "+523312345678", "5213312345678"),
            // Argentina: the 9 of mobiles.
            ("5491158749895", "+5491158749895", "5491158749895"),
            // Brazil, area 31 (Belo Horizonte): ids without the ninth digit.
            ("553155550123", "+5531955550123", "553155550123"),
            ("559281723241", "+5592981723241", "559281723241"),
            // Brazil, area 11 (São Paulo): ids with it.
            ("5511987654321", "+5511987654321", "5511987654321"),
            // Elsewhere the id is the number.
            ("14155550123", "+14155550123", "14155550123"),
            ("447911123456", "+447911123456", "447911123456"),
            ("919876543210", "+919876543210", "919876543210"),
        ] {
            let from_id = E164::from_wa_id(wa_id).unwrap();
            assert_eq!(from_id.as_str(), dialable, "{wa_id}");
            let typed = E164::parse(dialable).unwrap();
            assert_eq!(typed, from_id, "{dialable}");
            assert_eq!(typed.whatsapp_id(), send_to, "{dialable}");
            assert!(
                typed.equivalents().contains(&format!("+{wa_id}")),
                "{wa_id}"
            );
            assert!(from_id.equivalents().contains(&dialable.to_owned()));
        }
        // The Argentine number written without the 9, as a business may store it: the same
        // customer, reached at the id with the 9.
        let without_nine = E164::parse("+541158749895").unwrap();
        assert!(
            without_nine
                .equivalents()
                .contains(&"+5491158749895".to_owned())
        );
        assert_eq!(without_nine.whatsapp_id(), "5491158749895");
        // A Brazilian number as typed, without the ninth digit, is kept as typed (it may be a
        // line without it) and is the same customer as the one with it.
        let typed = E164::parse("+553155550123").unwrap();
        assert!(typed.equivalents().contains(&"+5531955550123".to_owned()));
        // Mexico's old form typed in is the same customer.
        assert_eq!(
            E164::parse("+521 555 555 0123").unwrap().as_str(),
            "+525555550123"
        );
    }

    /// A WhatsApp id our numbering-plan data does not know is still a customer; what cannot be
    /// a number is not.
    #[test]
    fn whatsapp_ids_are_trusted_within_e164() {
        assert!(
            E164::parse("+15550783881").is_err(),
            "fictional for the plan"
        );
        assert_eq!(
            E164::from_wa_id("15550783881").unwrap().as_str(),
            "+15550783881"
        );
        for bad in ["", "abc", "999123", "1415abc1234", "1234567890123456"] {
            assert!(E164::from_wa_id(bad).is_err(), "{bad:?} should be refused");
        }
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
