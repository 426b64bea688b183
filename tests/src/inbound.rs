//! Inbound `messages[]` items as Meta's Cloud API webhook reference allows them, for the
//! property test that every one is kept: each documented type with its optional fields present
//! or not, from a customer known by number, by business-scoped user id, or both, with or without
//! `context`, `referral` and a `contacts` profile.
//! Source: <https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>

use proptest::{option, prelude::*};
use serde_json::{Value, json};

/// WhatsApp ids of customers: the US, and the three countries whose ids differ from numbers.
const WA_IDS: [&str; 5] = [
    "14155550123",
    "5215555550123",
    "553155550123",
    "5491158749895",
    "447911123456",
];
const USER_IDS: [&str; 3] = [
    "US.13491208655302741918",
    "BR.1502576394655843",
    "US.ENT.11815799212886844830",
];

fn words() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "hola",
        "STOP",
        "¿precio?",
        "ok 👍",
        "  ",
        "line\nbreak",
        "",
    ])
    .prop_map(str::to_owned)
}

fn media() -> impl Strategy<Value = Value> {
    (option::of(words()), option::of(words()), any::<bool>()).prop_map(
        |(caption, filename, flag)| {
            let mut m = json!({"id": "1037543291543636", "mime_type": "image/jpeg",
                           "sha256": "a0d3d8b1e2f4"});
            if let Some(c) = caption {
                m["caption"] = json!(c);
            }
            if let Some(f) = filename {
                m["filename"] = json!(f);
            }
            m["voice"] = json!(flag);
            m["animated"] = json!(flag);
            m
        },
    )
}

fn interactive() -> impl Strategy<Value = Value> {
    prop_oneof![
        words().prop_map(
            |t| json!({"type": "button_reply", "button_reply": {"id": "b1", "title": t}})
        ),
        words().prop_map(|t| json!({"type": "list_reply",
            "list_reply": {"id": "r1", "title": t, "description": "row"}})),
        option::of(words()).prop_map(|b| {
            let mut reply =
                json!({"name": "flow", "response_json": "{\"flow_token\":\"t\",\"size\":\"M\"}"});
            if let Some(b) = b {
                reply["body"] = json!(b);
            }
            json!({"type": "nfm_reply", "nfm_reply": reply})
        }),
        Just(json!({"type": "call_permission_reply",
            "call_permission_reply": {"response": "accept", "is_permanent": false}})),
    ]
}

fn order() -> impl Strategy<Value = Value> {
    (
        option::of(words()),
        prop::collection::vec((1u32..5, prop::bool::ANY), 0..3),
    )
        .prop_map(|(text, items)| {
            let items: Vec<Value> = items
                .iter()
                .enumerate()
                .map(|(i, (quantity, as_string))| {
                    let price = if *as_string {
                        json!("12.50")
                    } else {
                        json!(12.5)
                    };
                    json!({"product_retailer_id": format!("SKU-{i}"), "quantity": quantity,
                           "item_price": price, "currency": "USD"})
                })
                .collect();
            let mut o = json!({"catalog_id": "1537", "product_items": items});
            if let Some(t) = text {
                o["text"] = json!(t);
            }
            o
        })
}

/// One message type and its object.
fn content() -> impl Strategy<Value = (String, Value)> {
    let typed = |t: &'static str| move |v: Value| (t.to_owned(), v);
    prop_oneof![
        words().prop_map(|b| ("text".to_owned(), json!({"body": b}))),
        media().prop_map(typed("image")),
        media().prop_map(typed("video")),
        media().prop_map(typed("audio")),
        media().prop_map(typed("document")),
        media().prop_map(typed("sticker")),
        (option::of(words()), any::<bool>()).prop_map(|(name, address)| {
            let mut l = json!({"latitude": 19.4326, "longitude": -99.1332});
            if let Some(n) = name {
                l["name"] = json!(n);
            }
            if address {
                l["address"] = json!("Av. Reforma 1");
            }
            ("location".to_owned(), l)
        }),
        prop::collection::vec(option::of(words()), 0..3).prop_map(|names| {
            let cards: Vec<Value> = names
                .into_iter()
                .map(|n| match n {
                    Some(n) => json!({"name": {"formatted_name": n},
                                      "phones": [{"phone": "+1 415 555 0100", "wa_id": "14155550100"}]}),
                    None => json!({"phones": []}),
                })
                .collect();
            ("contacts".to_owned(), json!(cards))
        }),
        interactive().prop_map(typed("interactive")),
        words().prop_map(|t| ("button".to_owned(), json!({"text": t, "payload": "promo-stop"}))),
        order().prop_map(typed("order")),
        prop::sample::select(vec!["👍", ""]).prop_map(|e| (
            "reaction".to_owned(),
            json!({"message_id": "wamid.OLDER", "emoji": e})
        )),
        words().prop_map(|b| ("edit".to_owned(), json!({"original_message_id": "wamid.OLDER",
            "message": {"type": "text", "text": {"body": b}}}))),
        Just(("revoke".to_owned(), json!({"original_message_id": "wamid.OLDER"}))),
        Just(("request_welcome".to_owned(), Value::Null)),
        Just(("unsupported".to_owned(), Value::Null)),
        Just(("a_type_meta_adds_later".to_owned(), json!({"anything": true}))),
        prop::sample::select(vec![
            json!({"body": "User A changed from 14155550123 to 14155550177",
                   "wa_id": "14155550177", "type": "user_changed_number"}),
            json!({"body": "User A's user id changed", "user_id": "US.99912345678",
                   "type": "user_changed_user_id"}),
        ])
        .prop_map(typed("system")),
    ]
}

/// Who wrote: a number, a user id, or both; and the `contacts` profile Meta sends with it
/// (never with a system message).
fn customer() -> impl Strategy<Value = (Option<String>, Option<String>, bool, Option<String>)> {
    (
        option::of(prop::sample::select(WA_IDS.to_vec())),
        option::of(prop::sample::select(USER_IDS.to_vec())),
        any::<bool>(),
        option::of(Just("@ana".to_owned())),
    )
        .prop_filter("a customer is named somehow", |(w, u, _, _)| {
            w.is_some() || u.is_some()
        })
        .prop_map(|(w, u, profile, username)| {
            (
                w.map(str::to_owned),
                u.map(str::to_owned),
                profile,
                username,
            )
        })
}

/// A whole `value` of a `messages` change: `{"contacts": [...]?, "messages": [item]}`, the
/// item's id ending in `suffix` so that every case is a new message.
pub fn messages_value() -> impl Strategy<Value = Value> {
    (content(), customer(), any::<bool>(), any::<bool>()).prop_map(
        |((type_name, object), (wa_id, user_id, profile, username), context, referral)| {
            let mut item = json!({"id": "wamid.PROP", "type": type_name,
                                  "timestamp": chrono::Utc::now().timestamp().to_string()});
            if let Some(w) = &wa_id {
                item["from"] = json!(w);
            }
            if let Some(u) = &user_id {
                item["from_user_id"] = json!(u);
            }
            if !object.is_null() {
                item[&type_name] = object;
            }
            if type_name == "unsupported" || type_name == "a_type_meta_adds_later" {
                item["errors"] = json!([{"code": 131051, "title": "Message type unknown",
                    "error_data": {"details": "Message type is currently not supported."}}]);
            }
            if context {
                item["context"] = json!({"from": "14155550199", "id": "wamid.EARLIER"});
            }
            if referral {
                item["referral"] = json!({"source_url": "https://fb.me/ad", "source_id": "1202",
                    "source_type": "ad", "headline": "Tees", "body": "2 for 1",
                    "ctwa_clid": "ARAkLkA"});
            }
            let mut value = json!({"messages": [item]});
            if profile && type_name != "system" {
                let mut contact = json!({"profile": {"name": "Ana"}});
                if let Some(w) = wa_id {
                    contact["wa_id"] = json!(w);
                }
                if let Some(u) = user_id {
                    contact["user_id"] = json!(u);
                }
                if let Some(n) = username {
                    contact["profile"]["username"] = json!(n);
                }
                value["contacts"] = json!([contact]);
            }
            value
        },
    )
}

/// `n` samples of `strategy`, from a fixed seed so that a failure is the same on every run.
pub fn samples<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    use proptest::{
        strategy::ValueTree,
        test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
    };
    let seed = [7u8; 32];
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("the strategy generates")
                .current()
        })
        .collect()
}
