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
pub(crate) mod tests {
    use super::*;

    /// `object` as Waflow sends a message of `kind` (`message_body` in cloud_api.rs).
    pub(crate) fn message(kind: &str, object: Value) -> Value {
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "14155550123", "type": kind, kind: object})
    }

    /// The code Meta refuses `body` with, if any (no templates known).
    pub(crate) fn code(body: &Value) -> Option<i64> {
        refusal(body, &[]).map(|r| r["error"]["code"].as_i64().unwrap())
    }

    #[track_caller]
    pub(crate) fn accepted(body: Value) {
        assert_eq!(refusal(&body, &[]), None, "{body}");
    }

    #[test]
    fn a_refusal_is_meta_s_error_json() {
        let refused = refusal(&json!({"messaging_product": "whatsapp", "to": "1"}), &[]).unwrap();
        assert_eq!(refused["error"]["code"], 131008);
        assert_eq!(refused["error"]["type"], "OAuthException");
        assert_eq!(
            refused["error"]["message"],
            "(#131008) Required parameter is missing"
        );
        assert_eq!(
            refused["error"]["error_data"]["messaging_product"],
            "whatsapp"
        );
        assert!(refused["error"]["error_data"]["details"].is_string());
        assert_eq!(refused["error"]["fbtrace_id"], "A1");
        assert_eq!(status(&refused), 400);
    }

    #[test]
    fn the_envelope() {
        let text = json!({"body": "Hi"});
        accepted(message("text", text.clone()));
        // A business-scoped user id instead of a number, and a quoted reply (usernames.rs).
        accepted(
            json!({"messaging_product": "whatsapp", "recipient": "US.13491208655302741918",
                        "type": "text", "text": text, "context": {"message_id": "wamid.IN-1"}}),
        );
        accepted(
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"}),
        );
        let with = |key: &str, value: Value| {
            let mut body = message("text", text.clone());
            body[key] = value;
            code(&body)
        };
        assert_eq!(with("messaging_product", json!("sms")), Some(131009));
        assert_eq!(with("to", json!("")), Some(131009));
        assert_eq!(with("to", json!(14155550123u64)), Some(100));
        assert_eq!(with("recipient_type", json!("group")), Some(131009));
        assert_eq!(with("context", json!({"message_id": 1})), Some(100));
        assert_eq!(with("context", json!({})), Some(131008));
        assert_eq!(with("type", json!("gif")), Some(131051));
        assert_eq!(with("image", json!({"id": "1"})), Some(100));
        let mut no_to = message("text", text.clone());
        no_to.as_object_mut().unwrap().remove("to");
        assert_eq!(code(&no_to), Some(131008));
        let mut no_product = message("text", text.clone());
        no_product
            .as_object_mut()
            .unwrap()
            .remove("messaging_product");
        assert_eq!(code(&no_product), Some(131008));
        assert_eq!(
            code(&json!({"messaging_product": "whatsapp", "to": "1", "type": "text"})),
            Some(131008)
        );
        assert_eq!(code(&json!(["text"])), Some(100));
    }

    #[test]
    fn text_messages() {
        // sends_reach_meta_exactly_as_documented (cloud_api.rs), whole.
        accepted(
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": "14155550123", "type": "text", "text": {"preview_url": false, "body": "You're welcome"}}),
        );
        accepted(message("text", json!({"body": "x".repeat(4096)})));
        for (object, expected) in [
            (json!({"body": ""}), 131009),
            (json!({"body": "x".repeat(4097)}), 131009),
            (json!({}), 131008),
            (json!({"body": "Hi", "preview_url": "no"}), 100),
            (json!({"body": "Hi", "caption": "x"}), 100),
        ] {
            assert_eq!(
                code(&message("text", object.clone())),
                Some(expected),
                "{object}"
            );
        }
    }

    #[test]
    fn media_messages() {
        // every_kind_reaches_meta_in_its_shape (rich_messages.rs).
        accepted(message(
            "image",
            json!({"link": "https://cdn.example.com/blue.jpg", "caption": "In blue"}),
        ));
        accepted(message("video", json!({"id": "1166846181421424"})));
        accepted(message(
            "audio",
            json!({"link": "https://cdn.example.com/note.ogg"}),
        ));
        accepted(message(
            "document",
            json!({"link": "https://cdn.example.com/c.pdf", "caption": "Catalog",
            "filename": "catalog.pdf"}),
        ));
        accepted(message("sticker", json!({"id": "798882015472548"})));
        for (kind, object, expected) in [
            (
                "image",
                json!({"link": "https://a.example/x.jpg", "id": "1"}),
                100,
            ),
            ("image", json!({}), 131008),
            ("image", json!({"link": "ftp://a.example/x.jpg"}), 131009),
            ("image", json!({"link": "not a url"}), 131009),
            ("image", json!({"id": ""}), 131009),
            (
                "image",
                json!({"id": "1", "caption": "x".repeat(1025)}),
                131009,
            ),
            ("image", json!({"id": "1", "filename": "x.jpg"}), 100),
            ("audio", json!({"id": "1", "caption": "no"}), 100),
            ("sticker", json!({"id": "1", "caption": "no"}), 100),
            ("video", json!("1"), 100),
        ] {
            assert_eq!(
                code(&message(kind, object.clone())),
                Some(expected),
                "{kind} {object}"
            );
        }
    }

    #[test]
    fn locations() {
        accepted(message(
            "location",
            json!({"latitude": 19.4326, "longitude": -99.1332, "name": "Store",
            "address": "Av. Juárez 1"}),
        ));
        accepted(message(
            "location",
            json!({"latitude": -90, "longitude": 180}),
        ));
        for (object, expected) in [
            (json!({"latitude": 120.0, "longitude": 0.0}), 131009),
            (json!({"latitude": 0.0, "longitude": -180.5}), 131009),
            (json!({"latitude": "19.4", "longitude": 0.0}), 100),
            (json!({"longitude": 0.0}), 131008),
            (json!({"latitude": 0.0, "longitude": 0.0, "name": 7}), 100),
        ] {
            assert_eq!(
                code(&message("location", object.clone())),
                Some(expected),
                "{object}"
            );
        }
    }

    #[test]
    fn reactions_and_contacts() {
        accepted(message(
            "reaction",
            json!({"message_id": "wamid.IN-1", "emoji": "👍"}),
        ));
        accepted(message(
            "reaction",
            json!({"message_id": "wamid.IN-1", "emoji": ""}),
        ));
        assert_eq!(
            code(&message("reaction", json!({"emoji": "👍"}))),
            Some(131008)
        );
        assert_eq!(
            code(&message("reaction", json!({"message_id": "wamid.IN-1"}))),
            Some(131008)
        );
        assert_eq!(
            code(&message("reaction", json!({"message_id": "w", "emoji": 1}))),
            Some(100)
        );
        accepted(message(
            "contacts",
            json!([{"name": {"formatted_name": "Ana"}}]),
        ));
        assert_eq!(code(&message("contacts", json!([]))), Some(131009));
        assert_eq!(
            code(&message("contacts", json!([{"phones": []}]))),
            Some(131008)
        );
    }
}
