//! Generators for the property tests that feed parsers and validators what the outside world
//! may send: any JSON, weighted towards the keys and values those parsers look for, so that
//! deep paths are reached and not only the first `as_str()?`.

use proptest::prelude::*;
use serde_json::Value;

/// Keys and values the webhook parser, the flow-definition validator and the renderers read.
const WORDS: &[&str] = &[
    "type",
    "text",
    "body",
    "from",
    "id",
    "timestamp",
    "interactive",
    "button_reply",
    "list_reply",
    "title",
    "button",
    "payload",
    "status",
    "statuses",
    "errors",
    "code",
    "recipient_id",
    "messages",
    "contacts",
    "profile",
    "name",
    "wa_id",
    "caption",
    "filename",
    "image",
    "location",
    "document",
    "reaction",
    "trigger",
    "steps",
    "then",
    "else",
    "branches",
    "condition",
    "items",
    "seconds",
    "until",
    "manual",
    "schedule",
    "cron",
    "webhook",
    "send_template",
    "send_text",
    "delay",
    "branch",
    "loop",
    "http_request",
    "set_variables",
    "wait_for_reply",
    "values",
    "senderId",
    "template",
    "language",
    "to",
    "url",
    "method",
    "{{ trigger.x }}",
    "{{1}}",
    "{{ name }}",
    "{%",
    "}}",
    "+14155550123",
    "14155550123",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// Any JSON value, up to a few levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        word().prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Text with template syntax in it, well-formed or not.
pub fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 0..12).prop_map(|parts| parts.concat())
}
