//! A message template's content as Meta's template components describe it (header, body with
//! numbered placeholders, footer, buttons) and the checks Meta's review applies to it ("Create and
//! manage templates" in the Cloud API reference). Pure data: the template service stores it, the
//! Cloud API provider translates it, the parameter mapping reads it.

use serde::{Deserialize, Serialize};
use waflow_entities::{
    E164,
    enums::{ButtonType, HeaderFormat, TemplateCategory},
};

use crate::{
    error::{Error, Result},
    placeholders::Placeholders,
    validation::Problems,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: HeaderFormat,
    pub text: Option<String>,
    /// A sample for Meta's review: a TEXT header's value for {{1}}; an IMAGE, VIDEO or DOCUMENT
    /// header's sample media as a header handle from Meta's Resumable Upload API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Button {
    pub r#type: ButtonType,
    pub text: String,
    pub url: Option<String>,
    pub phone_number: Option<String>,
    /// A sample for Meta's review: a COPY_CODE button's code, a dynamic URL's full URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// A template's content, stored as JSON in `template.components`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    pub header: Option<Header>,
    pub body: String,
    pub footer: Option<String>,
    #[serde(default)]
    pub buttons: Vec<Button>,
    /// Sample values for the body placeholders, which Meta's review requires.
    #[serde(default)]
    pub body_examples: Vec<String>,
}

impl Components {
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(value.clone())
            .map_err(|e| Error::Internal(format!("stored template components are malformed: {e}")))
    }
}

/// The placeholders of `text`, or a problem recorded on `field` (and none counted).
fn placeholders(problems: &mut Problems, field: &str, text: &str) -> Option<Placeholders> {
    Placeholders::parse(text)
        .map_err(|message| problems.add(field, message))
        .ok()
}

/// Checks components against Meta's limits and what its review requires ("Create and manage
/// templates": a sample for every variable and every media header); returns the number of body
/// placeholders.
pub fn validate_components(problems: &mut Problems, c: &Components) -> usize {
    if let Some(header) = &c.header {
        validate_header(problems, header);
    }
    problems.text("components.body", &c.body, 1024);
    let variables = placeholders(problems, "components.body", &c.body).map_or(0, |p| p.count());
    if c.body_examples.len() != variables {
        problems.add(
            "components.bodyExamples",
            format!(
                "Meta's review needs one example per body placeholder ({variables}), got {}",
                c.body_examples.len()
            ),
        );
    }
    if let Some(footer) = &c.footer {
        problems.text("components.footer", footer, 60);
        problems.check(
            Placeholders::parse(footer).is_ok_and(|p| p.count() == 0),
            "components.footer",
            "may not contain placeholders",
        );
    }
    validate_buttons(problems, &c.buttons);
    variables
}

/// A TEXT header: at most 60 characters and one placeholder, with a sample when it has one. A
/// media header: a sample header handle, without which Meta's review refuses it.
fn validate_header(problems: &mut Problems, header: &Header) {
    let example = header.example.as_deref().filter(|e| !e.trim().is_empty());
    match (&header.format, &header.text) {
        (HeaderFormat::Text, Some(text)) => {
            problems.text("components.header.text", text, 60);
            let count = placeholders(problems, "components.header.text", text).map(|p| p.count());
            if count.is_some_and(|n| n > 1) {
                problems.add(
                    "components.header.text",
                    "may contain at most one placeholder, {{1}}",
                );
            }
            if count == Some(1) && example.is_none() {
                problems.add(
                    "components.header.example",
                    "Meta's review needs a sample value for the header's placeholder",
                );
            }
        }
        (HeaderFormat::Text, None) => {
            problems.add("components.header.text", "is required for a TEXT header")
        }
        (_, Some(_)) => problems.add("components.header.text", "is only for TEXT headers"),
        (HeaderFormat::Location, None) => {}
        (format, None) => problems.check(
            example.is_some(),
            "components.header.example",
            format!(
                "Meta's review needs a sample {} for a media header: a header handle from Meta's \
                 Resumable Upload API",
                serde_json::json!(format).as_str().unwrap_or_default()
            ),
        ),
    }
}

/// Meta's limits on a template's buttons ("Buttons", WhatsApp template components): at most
/// 10, of which at most 2 URL, 1 PHONE_NUMBER and 1 COPY_CODE; a URL's one placeholder at its
/// end; a COPY_CODE button's sample code of at most 20 letters and digits.
fn validate_buttons(problems: &mut Problems, buttons: &[Button]) {
    problems.check(
        buttons.len() <= 10,
        "components.buttons",
        "at most 10 buttons",
    );
    for (kind, most) in [
        (ButtonType::Url, 2),
        (ButtonType::PhoneNumber, 1),
        (ButtonType::CopyCode, 1),
        (ButtonType::Otp, 1),
    ] {
        let count = buttons.iter().filter(|b| b.r#type == kind).count();
        problems.check(
            count <= most,
            "components.buttons",
            format!(
                "at most {most} {} button(s)",
                serde_json::json!(kind).as_str().unwrap_or_default()
            ),
        );
    }
    for (i, button) in buttons.iter().enumerate() {
        let field = |name: &str| format!("components.buttons[{i}].{name}");
        problems.text(&field("text"), &button.text, 25);
        match button.r#type {
            ButtonType::Url => match &button.url {
                Some(url) => {
                    problems.url(&field("url"), url);
                    let placeholders = placeholders(problems, &field("url"), url);
                    let count = placeholders.as_ref().map_or(0, Placeholders::count);
                    let dynamic = count == 1 && url.trim_end().ends_with("}}");
                    problems.check(
                        count == 0 || dynamic,
                        field("url"),
                        "may hold one placeholder, at its end (https://shop.example.com/track/{{1}})",
                    );
                    problems.check(
                        !dynamic || button.example.as_deref().is_some_and(|e| !e.is_empty()),
                        field("example"),
                        "Meta's review needs a sample full URL for a URL with a placeholder",
                    );
                }
                None => problems.add(field("url"), "is required for a URL button"),
            },
            ButtonType::PhoneNumber => match button.phone_number.as_deref().map(E164::parse) {
                Some(Ok(_)) => {}
                Some(Err(e)) => problems.add(field("phoneNumber"), e.to_string()),
                None => problems.add(
                    field("phoneNumber"),
                    "is required for a PHONE_NUMBER button",
                ),
            },
            ButtonType::CopyCode => {
                let ok = button.example.as_deref().is_some_and(|code| {
                    (1..=20).contains(&code.chars().count())
                        && code.chars().all(|c| c.is_ascii_alphanumeric())
                });
                problems.check(
                    ok,
                    field("example"),
                    "a COPY_CODE button needs a sample code of 1 to 20 letters and digits",
                );
            }
            ButtonType::QuickReply | ButtonType::Otp => {}
            ButtonType::Flow | ButtonType::Catalog | ButtonType::Mpm | ButtonType::VoiceCall => {
                problems.add(
                    field("type"),
                    "Waflow creates QUICK_REPLY, URL, PHONE_NUMBER, COPY_CODE and OTP buttons; \
                     templates with other buttons come from Meta through syncTemplates",
                )
            }
        }
    }
}

/// What Meta requires of a category: an AUTHENTICATION template has no header or footer, a body
/// with the one code and one OTP button; OTP buttons exist only there ("Authentication
/// templates", WhatsApp).
pub fn validate_category(problems: &mut Problems, category: TemplateCategory, c: &Components) {
    let otp = c
        .buttons
        .iter()
        .filter(|b| b.r#type == ButtonType::Otp)
        .count();
    if category == TemplateCategory::Authentication {
        problems.check(
            c.header.is_none(),
            "components.header",
            "AUTHENTICATION templates have no header",
        );
        // Meta writes an AUTHENTICATION template's text itself ("{{1}} is your verification
        // code.", in the template's language); the one variable is the code.
        problems.check(
            Placeholders::parse(&c.body).is_ok_and(|p| p.count() == 1),
            "components.body",
            "an AUTHENTICATION template's body has one placeholder, the code",
        );
        problems.check(
            c.footer.is_none(),
            "components.footer",
            "AUTHENTICATION templates have no footer text (Meta adds the code's expiry)",
        );
        problems.check(
            otp == 1,
            "components.buttons",
            "an AUTHENTICATION template needs one OTP button",
        );
    } else {
        problems.check(
            otp == 0,
            "components.buttons",
            "OTP buttons are for AUTHENTICATION templates only",
        );
    }
}
