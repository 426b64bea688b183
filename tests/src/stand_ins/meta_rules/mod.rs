//! What Meta's WhatsApp Cloud API refuses in a `POST /{phone-number-id}/messages` body, for the
//! stand-in: [`refusal`] answers what Meta answers, so a test that passes sent a body Meta takes.
//!
//! Sources (developers.facebook.com, WhatsApp Business Platform): the "Messages API" reference
//! (envelope, text, media, location, reaction and contacts objects), "Interactive reply buttons
//! messages", "Interactive list messages", "Template components", "Coupon code templates",
//! "Authentication templates", "Location templates", "Business-scoped user IDs", and "WhatsApp
//! error codes" (codes, titles, HTTP statuses).
//!
//! A problem's code: an absent required field is 131008 ("Required parameter is missing"), a
//! field of the wrong JSON kind or a key Meta does not know is 100 ("Invalid parameter"), a value
//! outside Meta's limits is 131009 ("Parameter value is not valid"), an unknown message type is
//! 131051; templates add 132000, 132001, 132012, 132015 and 132016 (see template.rs).

use serde_json::{Value, json};

mod interactive;
mod template;

/// Meta's answer refusing `body` (a `POST /{phone-number-id}/messages` request body), or None
/// when Meta would accept it.
/// `templates`: the templates the business account has, as `GET /{waba-id}/message_templates`
/// lists them (entries with name, language, status, components); when empty, template existence
/// and counts are not checked, only structure.
pub fn refusal(body: &Value, templates: &[Value]) -> Option<Value> {
    let refused = message(body, templates).err()?;
    Some(json!({"error": {
        "message": format!("(#{}) {}", refused.code, title(refused.code)),
        "type": "OAuthException",
        "code": refused.code,
        "error_data": {"messaging_product": "whatsapp", "details": refused.details},
        "fbtrace_id": "A1",
    }}))
}

/// The HTTP status Meta answers `refusal` with ("WhatsApp error codes"): 404 for a template
/// that does not exist, 400 for every other refusal here.
pub fn status(refusal: &Value) -> u16 {
    if refusal["error"]["code"] == 132001 {
        404
    } else {
        400
    }
}

/// Meta's title for `code`, which its `message` carries as `(#code) title`.
fn title(code: i64) -> &'static str {
    match code {
        100 => "Invalid parameter",
        131008 => "Required parameter is missing",
        131009 => "Parameter value is not valid",
        131051 => "Unsupported message type",
        132000 => "Number of parameters does not match the expected number of params",
        132001 => "Template name does not exist in the translation",
        132012 => "Parameter format does not match format in the created template",
        132015 => "Template is Paused",
        132016 => "Template is Disabled",
        _ => "Something went wrong",
    }
}

/// Why Meta refuses a body: its error code, and `error_data.details`.
#[derive(Debug)]
pub(crate) struct Refused {
    code: i64,
    details: String,
}

pub(crate) type Checked<T = ()> = Result<T, Refused>;

pub(crate) fn refuse<T>(code: i64, details: impl Into<String>) -> Checked<T> {
    Err(Refused {
        code,
        details: details.into(),
    })
}

/// `type` values the Messages API sends ("Messages API": `type`).
const TYPES: [&str; 11] = [
    "text",
    "template",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "interactive",
    "location",
    "reaction",
    "contacts",
];

/// The envelope ("Messages API"): the product, the recipient (`to`, a phone number or `wa_id`;
/// or `recipient`, a business-scoped user id, "Business-scoped user IDs"), an optional quoted
/// message, and the object named by `type`.
fn message(body: &Value, templates: &[Value]) -> Checked {
    if !body.is_object() {
        return refuse(100, "the request body must be a JSON object");
    }
    if string(body, "messaging_product", "message")? != "whatsapp" {
        return refuse(131009, "messaging_product must be \"whatsapp\"");
    }
    if body.get("status").is_some() {
        return mark_read(body);
    }
    recipient(body)?;
    if let Some(kind) = body.get("recipient_type")
        && kind != "individual"
    {
        return refuse(
            131009,
            format!("recipient_type must be \"individual\", not {kind}"),
        );
    }
    if let Some(context) = body.get("context") {
        only(context, &["message_id"], "context")?;
        text(context, "message_id", "context", usize::MAX)?;
    }
    let kind = string(body, "type", "message")?;
    if !TYPES.contains(&kind) {
        return refuse(131051, format!("message type {kind:?} is not supported"));
    }
    let envelope = [
        "messaging_product",
        "recipient_type",
        "to",
        "recipient",
        "type",
        "context",
        "biz_opaque_callback_data",
        kind,
    ];
    only(body, &envelope, "message")?;
    let object = field(body, kind, "message")?;
    match kind {
        "text" => text_message(object),
        "template" => template::check(object, templates),
        "interactive" => interactive::check(object),
        "location" => location(object, "location"),
        "reaction" => reaction(object),
        "contacts" => contacts(object),
        media_kind => media_message(media_kind, object),
    }
}

/// `to` or `recipient`, at least one, each a non-empty string.
fn recipient(body: &Value) -> Checked {
    if body.get("to").is_none() && body.get("recipient").is_none() {
        return refuse(131008, "Parameter 'to' is required");
    }
    for key in ["to", "recipient"] {
        if body.get(key).is_some() {
            text(body, key, "message", usize::MAX)?;
        }
    }
    Ok(())
}

/// Marking a message read ("Mark messages as read"): `status: "read"` and its `message_id`.
fn mark_read(body: &Value) -> Checked {
    let keys = [
        "messaging_product",
        "status",
        "message_id",
        "typing_indicator",
    ];
    only(body, &keys, "message")?;
    if body["status"] != "read" {
        return refuse(131009, "status must be \"read\"");
    }
    text(body, "message_id", "message", usize::MAX).map(|_| ())
}

/// Text messages ("Messages API", text object): a body of 1 to 4096 characters.
fn text_message(t: &Value) -> Checked {
    only(t, &["body", "preview_url"], "text")?;
    text(t, "body", "text", 4096)?;
    match t.get("preview_url") {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(_) => refuse(100, "text.preview_url must be a boolean"),
    }
}

/// Media messages ("Messages API", media object): a caption on images, videos and documents
/// (≤ 1024 characters), a filename on documents only.
fn media_message(kind: &str, m: &Value) -> Checked {
    let extra: &[&str] = match kind {
        "image" | "video" => &["caption"],
        "document" => &["caption", "filename"],
        _ => &[],
    };
    media(m, kind, extra)?;
    optional_text(m, "caption", kind, 1024)?;
    Ok(())
}

/// A media object ("Messages API", media object): exactly one of `link` (an http or https URL
/// Meta downloads) and `id` (uploaded media), plus the `extra` keys its use allows.
pub(crate) fn media(m: &Value, at: &str, extra: &[&str]) -> Checked {
    if !m.is_object() {
        return refuse(100, format!("{at} must be an object"));
    }
    let keys: Vec<&str> = ["link", "id"].iter().chain(extra).copied().collect();
    only(m, &keys, at)?;
    match (m.get("link"), m.get("id")) {
        (Some(_), Some(_)) => refuse(100, format!("{at}: give a link or an id, not both")),
        (None, None) => refuse(131008, format!("{at}: a link or an id is required")),
        (Some(_), None) => {
            let link = string(m, "link", at)?;
            let url = reqwest::Url::parse(link).ok();
            let fine = url
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                && !link.contains(char::is_whitespace);
            if fine {
                Ok(())
            } else {
                refuse(131009, format!("{at}.link must be an http or https URL"))
            }
        }
        (None, Some(_)) => text(m, "id", at, usize::MAX).map(|_| ()),
    }?;
    if extra.contains(&"filename") {
        optional_text(m, "filename", at, usize::MAX)?;
    }
    Ok(())
}

/// A location ("Messages API", location object; also a template's location header): degrees
/// in range, an optional name and address.
pub(crate) fn location(l: &Value, at: &str) -> Checked {
    if !l.is_object() {
        return refuse(100, format!("{at} must be an object"));
    }
    only(l, &["latitude", "longitude", "name", "address"], at)?;
    for (key, limit) in [("latitude", 90.0), ("longitude", 180.0)] {
        let Some(degrees) = field(l, key, at)?.as_f64() else {
            return refuse(100, format!("{at}.{key} must be a number"));
        };
        if !(-limit..=limit).contains(&degrees) {
            return refuse(131009, format!("{at}.{key} must be within ±{limit}"));
        }
    }
    for key in ["name", "address"] {
        if l.get(key).is_some() {
            string(l, key, at)?;
        }
    }
    Ok(())
}

/// Reactions ("Messages API", reaction object): the message reacted to, and an emoji; an empty
/// emoji removes the reaction.
fn reaction(r: &Value) -> Checked {
    only(r, &["message_id", "emoji"], "reaction")?;
    text(r, "message_id", "reaction", usize::MAX)?;
    string(r, "emoji", "reaction").map(|_| ())
}

/// Contacts messages ("Messages API", contacts object): at least one contact, each named.
fn contacts(c: &Value) -> Checked {
    let Some(list) = c.as_array() else {
        return refuse(100, "contacts must be an array");
    };
    if list.is_empty() {
        return refuse(131009, "contacts must hold at least one contact");
    }
    for (i, contact) in list.iter().enumerate() {
        let at = format!("contacts[{i}]");
        text(
            object(contact, "name", &at)?,
            "formatted_name",
            &at,
            usize::MAX,
        )?;
    }
    Ok(())
}

/// `v[key]`, which Meta requires.
pub(crate) fn field<'a>(v: &'a Value, key: &str, at: &str) -> Checked<&'a Value> {
    match v.get(key) {
        Some(value) => Ok(value),
        None => refuse(131008, format!("Parameter '{at}.{key}' is required")),
    }
}

/// `v[key]`, a required object.
pub(crate) fn object<'a>(v: &'a Value, key: &str, at: &str) -> Checked<&'a Value> {
    match field(v, key, at)? {
        value @ Value::Object(_) => Ok(value),
        _ => refuse(100, format!("{at}.{key} must be an object")),
    }
}

/// `v[key]`, a required array.
pub(crate) fn array<'a>(v: &'a Value, key: &str, at: &str) -> Checked<&'a [Value]> {
    match field(v, key, at)? {
        Value::Array(items) => Ok(items),
        _ => refuse(100, format!("{at}.{key} must be an array")),
    }
}

/// `v[key]`, a required string (possibly empty).
pub(crate) fn string<'a>(v: &'a Value, key: &str, at: &str) -> Checked<&'a str> {
    match field(v, key, at)?.as_str() {
        Some(s) => Ok(s),
        None => refuse(100, format!("{at}.{key} must be a string")),
    }
}

/// `v[key]`, a required string of 1 to `max` characters.
pub(crate) fn text<'a>(v: &'a Value, key: &str, at: &str, max: usize) -> Checked<&'a str> {
    let s = string(v, key, at)?;
    let length = s.chars().count();
    if s.trim().is_empty() {
        return refuse(131009, format!("{at}.{key} must not be empty"));
    }
    if length > max {
        return refuse(
            131009,
            format!("{at}.{key} length invalid: {length} characters; at most {max} are allowed"),
        );
    }
    Ok(s)
}

/// `v[key]` when present: a string of 1 to `max` characters.
pub(crate) fn optional_text<'a>(
    v: &'a Value,
    key: &str,
    at: &str,
    max: usize,
) -> Checked<Option<&'a str>> {
    match v.get(key) {
        None => Ok(None),
        Some(_) => text(v, key, at, max).map(Some),
    }
}

/// Meta refuses keys it does not know in the objects it documents.
pub(crate) fn only(v: &Value, keys: &[&str], at: &str) -> Checked {
    let Some(object) = v.as_object() else {
        return refuse(100, format!("{at} must be an object"));
    };
    match object.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(unknown) => refuse(
            100,
            format!("Unexpected key \"{unknown}\" on param \"{at}\""),
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests;
