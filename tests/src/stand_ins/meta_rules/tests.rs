//! What the stand-in refuses and accepts, message type by message type, and the helpers the
//! interactive and template tests share.

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
    accepted(json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"}));
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
