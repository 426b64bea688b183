//! Meta's inbound `messages[]` items read as Waflow's: for every message type the Cloud API
//! webhook documents, a readable `body` for transcripts, the structured content as `payload`,
//! and who wrote. Source: Cloud API webhooks reference, "messages"
//! (<https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>)
//! and its pages per type; "Business-scoped user IDs" for `from_user_id`, `user_id` and
//! `username`.
//!
//! Reading never fails silently: an item is a customer's message, a system notice, or
//! unreadable with a reason (which the caller keeps as a dead letter).

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use waflow_entities::{E164, customer_address, enums::MessageKind};

use super::ingest::{Customer, IdentityChange, InboundMessage, SystemNotice};

/// What one `messages[]` item is.
#[derive(Debug)]
pub enum Reading {
    Message(InboundMessage),
    Notice(SystemNotice),
    /// Nothing Waflow can keep as a message: why, for the dead letter.
    Unreadable(String),
}

/// Reads `item`, with `contacts` the change's `contacts` array (the profile of who wrote).
pub fn read(item: &Value, contacts: &Value) -> Reading {
    let Some(id) = item["id"].as_str().filter(|id| !id.is_empty()) else {
        return Reading::Unreadable("the message has no id".into());
    };
    let Some(customer) = customer(item, contacts) else {
        return Reading::Unreadable(
            "the message names no customer: no usable `from` and no `from_user_id`".into(),
        );
    };
    let type_name = item["type"].as_str().unwrap_or("unknown");
    let timestamp = timestamp(&item["timestamp"]);
    if type_name == "system" {
        return Reading::Notice(notice(id, customer, timestamp, &item["system"]));
    }
    let (kind, body) = content(type_name, &item[type_name], &item["errors"]);
    Reading::Message(InboundMessage {
        provider_message_id: id.to_owned(),
        customer,
        timestamp,
        kind,
        body,
        payload: payload(item, type_name),
    })
}

/// Who wrote: `from` (digits of the number, absent for a customer with a hidden number) and
/// `from_user_id` (the BSUID), with the matching `contacts[]` entry's profile.
fn customer(item: &Value, contacts: &Value) -> Option<Customer> {
    let from = item["from"].as_str().filter(|f| !f.is_empty());
    let user_id = item["from_user_id"]
        .as_str()
        .filter(|id| customer_address::is_user_id(id));
    let all = contacts.as_array().map(Vec::as_slice).unwrap_or_default();
    let profile = all
        .iter()
        .find(|c| {
            (from.is_some() && c["wa_id"].as_str() == from)
                || (user_id.is_some() && c["user_id"].as_str() == user_id)
        })
        .or(if all.len() == 1 { all.first() } else { None });
    let phone = from.and_then(|f| E164::from_wa_id(f).ok());
    let user_id = user_id
        .or_else(|| profile.and_then(|p| p["user_id"].as_str()))
        .filter(|id| customer_address::is_user_id(id))
        .map(str::to_owned);
    if phone.is_none() && user_id.is_none() {
        return None;
    }
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    Some(Customer {
        wa_id: phone.as_ref().and(from).map(str::to_owned),
        phone,
        user_id,
        username: profile.and_then(|p| text(&p["profile"]["username"])),
        profile_name: profile.and_then(|p| text(&p["profile"]["name"])),
    })
}

/// A system message: WhatsApp telling the business that the customer's number (or BSUID)
/// changed. The old identity is `customer`; the new one is in `system`.
fn notice(id: &str, customer: Customer, timestamp: DateTime<Utc>, system: &Value) -> SystemNotice {
    let new_wa_id = system["wa_id"].as_str().filter(|w| !w.is_empty());
    SystemNotice {
        provider_message_id: id.to_owned(),
        customer,
        timestamp,
        body: system["body"].as_str().map(str::to_owned),
        change: IdentityChange {
            kind: system["type"].as_str().unwrap_or("unknown").to_owned(),
            phone: new_wa_id.and_then(|w| E164::from_wa_id(w).ok()),
            wa_id: new_wa_id.map(str::to_owned),
            user_id: system["user_id"]
                .as_str()
                .filter(|id| customer_address::is_user_id(id))
                .map(str::to_owned),
        },
        payload: json!({"type": "system", "system": system}),
    }
}

/// The message's `payload`: `{"type": t, t: <Meta's object>}` plus, when Meta sent them,
/// `context` (a reply to, a forward of, or a question about a product), `referral` and `errors`.
/// A plain text has none.
fn payload(item: &Value, type_name: &str) -> Option<Value> {
    let mut p = Map::new();
    for extra in ["context", "referral", "errors"] {
        if let Some(v) = item.get(extra).filter(|v| !v.is_null()) {
            p.insert(extra.into(), v.clone());
        }
    }
    if type_name == "text" && p.is_empty() {
        return None;
    }
    p.insert("type".into(), json!(type_name));
    let detail = &item[type_name];
    if !detail.is_null() {
        let mut detail = detail.clone();
        // A WhatsApp Flows answer is JSON in a string: give it as JSON.
        if let Some(parsed) = detail["nfm_reply"]["response_json"]
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            detail["nfm_reply"]["response"] = parsed;
        }
        p.insert(type_name.into(), detail);
    }
    Some(Value::Object(p))
}

fn text(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// The kind and the readable text of a message of `type_name` whose object is `d`.
fn content(type_name: &str, d: &Value, errors: &Value) -> (MessageKind, Option<String>) {
    let or = |v: &Value, fallback: &str| text(v).unwrap_or(fallback).to_owned();
    match type_name {
        "text" => (MessageKind::Text, text(&d["body"]).map(str::to_owned)),
        "image" => (MessageKind::Image, Some(or(&d["caption"], "(image)"))),
        "video" => (MessageKind::Video, Some(or(&d["caption"], "(video)"))),
        "audio" | "voice" => {
            let voice = d["voice"].as_bool().unwrap_or(type_name == "voice");
            let label = if voice { "(voice message)" } else { "(audio)" };
            (MessageKind::Audio, Some(label.to_owned()))
        }
        "document" => {
            let fallback = text(&d["filename"]).unwrap_or("(document)");
            (MessageKind::Document, Some(or(&d["caption"], fallback)))
        }
        "sticker" => (MessageKind::Sticker, Some("(sticker)".to_owned())),
        "location" => (MessageKind::Location, Some(location(d))),
        "contacts" => (MessageKind::Contacts, Some(shared_contacts(d))),
        "interactive" => (MessageKind::Interactive, Some(interactive(d))),
        "button" => (
            MessageKind::Interactive,
            Some(or(&d["text"], text(&d["payload"]).unwrap_or("(button)"))),
        ),
        "order" => (MessageKind::Order, Some(order(d))),
        "reaction" => (
            MessageKind::Reaction,
            Some(match text(&d["emoji"]) {
                Some(emoji) => format!("Reacted {emoji}"),
                None => "(removed a reaction)".to_owned(),
            }),
        ),
        "edit" => {
            let message = &d["message"];
            let edited_type = message["type"].as_str().unwrap_or("text");
            let (_, new) = content(edited_type, &message[edited_type], &Value::Null);
            let new = new.unwrap_or_else(|| "(empty)".into());
            (MessageKind::Edit, Some(format!("(edited) {new}")))
        }
        "revoke" => (MessageKind::Revoke, Some("(deleted a message)".to_owned())),
        "request_welcome" => (MessageKind::Welcome, Some("(opened the chat)".to_owned())),
        other => (MessageKind::Unsupported, Some(unsupported(other, errors))),
    }
}

fn location(d: &Value) -> String {
    let mut parts: Vec<String> = [&d["name"], &d["address"]]
        .into_iter()
        .filter_map(text)
        .map(str::to_owned)
        .collect();
    if let (Some(lat), Some(long)) = (d["latitude"].as_f64(), d["longitude"].as_f64()) {
        parts.push(format!("({lat}, {long})"));
    }
    if parts.is_empty() {
        "(location)".to_owned()
    } else {
        format!("Location: {}", parts.join(", "))
    }
}

/// Contact cards: each one's name and numbers.
fn shared_contacts(d: &Value) -> String {
    let cards: Vec<String> = d
        .as_array()
        .into_iter()
        .flatten()
        .map(|card| {
            let name = text(&card["name"]["formatted_name"])
                .or(text(&card["name"]["first_name"]))
                .unwrap_or("(no name)");
            let phones: Vec<&str> = card["phones"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| text(&p["phone"]))
                .collect();
            if phones.is_empty() {
                name.to_owned()
            } else {
                format!("{name} {}", phones.join(", "))
            }
        })
        .collect();
    if cards.is_empty() {
        "(contact card)".to_owned()
    } else {
        format!("Contact: {}", cards.join("; "))
    }
}

/// A reply to an interactive message: a button's or list row's title, a Flows answer, a call
/// permission answer.
fn interactive(d: &Value) -> String {
    let subtype = d["type"].as_str().unwrap_or_default();
    let reply = &d[subtype];
    match subtype {
        "button_reply" | "list_reply" => text(&reply["title"]).unwrap_or("(reply)").to_owned(),
        "nfm_reply" => match (text(&reply["body"]), text(&reply["name"])) {
            (Some(body), _) => body.to_owned(),
            (None, Some(name)) => format!("(answered the form {name})"),
            (None, None) => "(answered a form)".to_owned(),
        },
        "call_permission_reply" => format!(
            "(call permission: {})",
            text(&reply["response"]).unwrap_or("answered")
        ),
        _ => "(interactive reply)".to_owned(),
    }
}

/// An order from the catalog: its items and the customer's note.
fn order(d: &Value) -> String {
    let items: Vec<String> = d["product_items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let sku = text(&item["product_retailer_id"]).unwrap_or("?");
            let quantity = number(&item["quantity"]).unwrap_or_else(|| "1".into());
            match (number(&item["item_price"]), text(&item["currency"])) {
                (Some(price), Some(currency)) => {
                    format!("{quantity} × {sku} at {price} {currency}")
                }
                _ => format!("{quantity} × {sku}"),
            }
        })
        .collect();
    let mut body = format!("Order: {}", items.join(", "));
    if items.is_empty() {
        body = "Order: (no items)".into();
    }
    if let Some(note) = text(&d["text"]) {
        body.push_str(&format!(". Note: {note}"));
    }
    body
}

/// A number Meta may send as a JSON number or a string.
fn number(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn unsupported(type_name: &str, errors: &Value) -> String {
    let error = &errors[0];
    let why = text(&error["error_data"]["details"])
        .or(text(&error["title"]))
        .or(text(&error["message"]));
    format!("(unsupported message: {})", why.unwrap_or(type_name))
}

/// Meta's `timestamp` (Unix seconds, as a string or a number); now when absent. Never later
/// than now: a clock ahead of ours must not stretch the 24-hour window.
pub fn timestamp(value: &Value) -> DateTime<Utc> {
    let seconds = value
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .or_else(|| value.as_i64());
    let at = seconds
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_else(Utc::now);
    at.min(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(reading: Reading) -> InboundMessage {
        match reading {
            Reading::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn the_customer_is_told_by_number_user_id_or_both() {
        let contacts = json!([
            {"profile": {"name": "Other"}, "wa_id": "14155550100"},
            {"profile": {"name": "Ana", "username": "@ana"}, "wa_id": "5215555550123",
             "user_id": "MX.1502576394655843"}]);
        let item = json!({"from": "5215555550123", "id": "wamid.1", "type": "text",
                          "text": {"body": "hola"}});
        let m = message(read(&item, &contacts));
        assert_eq!(m.customer.phone.unwrap().as_str(), "+525555550123");
        assert_eq!(m.customer.wa_id.as_deref(), Some("5215555550123"));
        assert_eq!(m.customer.user_id.as_deref(), Some("MX.1502576394655843"));
        assert_eq!(m.customer.username.as_deref(), Some("@ana"));
        assert_eq!(m.customer.profile_name.as_deref(), Some("Ana"));

        let hidden = json!({"from_user_id": "US.134912", "id": "wamid.2", "type": "text",
                            "text": {"body": "hi"}});
        let m = message(read(&hidden, &Value::Null));
        assert!(m.customer.phone.is_none());
        assert_eq!(m.customer.user_id.as_deref(), Some("US.134912"));
    }

    #[test]
    fn what_names_no_customer_or_has_no_id_is_unreadable() {
        for item in [
            json!({"from": "14155550123", "type": "text", "text": {"body": "no id"}}),
            json!({"id": "wamid.3", "type": "text"}),
            json!({"id": "wamid.4", "from": "not a number", "type": "text"}),
            json!({"id": "wamid.5", "from_user_id": "not-a-bsuid", "type": "text"}),
            json!("not even an object"),
        ] {
            assert!(
                matches!(read(&item, &Value::Null), Reading::Unreadable(_)),
                "{item}"
            );
        }
    }

    #[test]
    fn a_number_change_is_a_notice_with_the_new_identity() {
        let item = json!({"from": "14155550123", "id": "wamid.6", "type": "system",
            "system": {"body": "User A changed from 14155550123 to 5215555550123",
                       "wa_id": "5215555550123", "type": "user_changed_number"}});
        let Reading::Notice(notice) = read(&item, &Value::Null) else {
            panic!("not a notice");
        };
        assert_eq!(notice.customer.phone.unwrap().as_str(), "+14155550123");
        assert_eq!(notice.change.kind, "user_changed_number");
        assert_eq!(notice.change.phone.unwrap().as_str(), "+525555550123");
        assert_eq!(notice.change.wa_id.as_deref(), Some("5215555550123"));
        assert_eq!(notice.payload["system"]["type"], "user_changed_number");
    }

    #[test]
    fn context_and_referral_ride_on_any_type() {
        let item = json!({"from": "14155550123", "id": "wamid.7", "type": "text",
            "text": {"body": "hi"}, "context": {"id": "wamid.0", "from": "14155550199"},
            "referral": {"source_type": "ad", "ctwa_clid": "ARA"}});
        let m = message(read(&item, &Value::Null));
        let payload = m.payload.unwrap();
        assert_eq!(
            super::super::ingest::referral(Some(&payload)).unwrap()["ctwa_clid"],
            "ARA"
        );
        assert_eq!(payload["context"]["id"], "wamid.0");
        assert_eq!(payload["type"], "text");
        let plain = json!({"from": "14155550123", "id": "wamid.8", "type": "text",
                           "text": {"body": "hi"}});
        assert!(message(read(&plain, &Value::Null)).payload.is_none());
    }
}
