//! Rich messages inside the 24-hour window (issue 17): media, a location, reply buttons, a list,
//! a reaction and a quoted reply, each reaching the Cloud API in Meta's exact shape, from
//! `sendMessage` and from a flow's `send_message` step; Meta's limits refused before anything is
//! stored or sent.

use serde_json::{Value, json};
use waflow_tests::{
    APP_SECRET, Meta, TestApp, error_code, error_fields, eventually, messages_webhook,
};

use crate::flows::{live_flow, run_flow, run_in};

const PN: &str = "PN-RICH-MSG";
const CUSTOMER: &str = "+14155550123";
const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id kind body status payload } }";

fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

/// The customer writes `wamid` to the Cloud API sender, which opens the window; answers
/// Waflow's id of that message.
async fn customer_writes(app: &TestApp, wamid: &str, text: &str) -> String {
    let body = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "14155550123"}],
               "messages": [{"from": "14155550123", "id": wamid, "timestamp": now(), "type": "text",
                             "text": {"body": text}}]}),
    );
    assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 200);
    app.message_id_of(wamid).await
}

async fn cloud_app(app: &TestApp, meta: &Meta) -> String {
    meta.accepts_messages(PN).await;
    app.cloud_sender(meta, "+14155550199", PN).await
}

async fn send(app: &TestApp, sender: &str, content: Value, extra: Value) -> Value {
    let mut input = json!({"senderId": sender, "to": CUSTOMER, "content": content});
    for (key, value) in extra.as_object().unwrap() {
        input[key] = value.clone();
    }
    app.gql(SEND, json!({"input": input})).await
}

/// The bodies that reached Meta, once `n` have, without `to` and `messaging_product`.
async fn delivered(meta: &Meta, n: usize) -> Vec<Value> {
    eventually(&format!("{n} sends to reach Meta"), || async {
        let sent: Vec<Value> = meta
            .requests("POST", &format!("/{PN}/messages"))
            .await
            .iter()
            .map(|r| {
                let mut body: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(body["to"], "14155550123");
                assert_eq!(body["messaging_product"], "whatsapp");
                let object = body.as_object_mut().unwrap();
                object.remove("to");
                object.remove("messaging_product");
                object.remove("recipient_type");
                body
            })
            .collect();
        assert!(sent.len() <= n, "more than {n} sends: {sent:#?}");
        (sent.len() == n).then_some(sent)
    })
    .await
}

async fn every_kind_reaches_meta_in_its_shape(app: TestApp) {
    let meta = Meta::start().await;
    let sender = cloud_app(&app, &meta).await;
    let inbound = customer_writes(&app, "wamid.IN-1", "Do you have it in blue?").await;
    let sends = [
        json!({"image": {"link": "https://cdn.example.com/blue.jpg", "caption": "In blue"}}),
        json!({"video": {"id": "1166846181421424"}}),
        json!({"audio": {"link": "https://cdn.example.com/note.ogg"}}),
        json!({"document": {"link": "https://cdn.example.com/c.pdf", "filename": "catalog.pdf", "caption": "Catalog"}}),
        json!({"sticker": {"id": "798882015472548"}}),
        json!({"location": {"latitude": 19.4326, "longitude": -99.1332, "name": "Store", "address": "Av. Juárez 1"}}),
        json!({"buttons": {"header": {"image": {"link": "https://cdn.example.com/blue.jpg"}},
            "body": "Shall we reserve one?", "footer": "Acme",
            "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]}}),
        json!({"list": {"header": "Sizes", "body": "Pick your size", "button": "Sizes", "sections": [
            {"title": "Men", "rows": [{"id": "m-m", "title": "M", "description": "Chest 96-101 cm"}]},
            {"title": "Women", "rows": [{"id": "w-s", "title": "S"}]}]}}),
        json!({"reaction": {"messageId": inbound, "emoji": "👍"}}),
    ];
    let mut answers = Vec::new();
    for content in &sends {
        let sent = send(&app, &sender, content.clone(), json!({})).await;
        assert!(sent["errors"].is_null(), "{content}: {sent}");
        answers.push(sent["data"]["sendMessage"].clone());
    }
    let text = app
        .gql(
            "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
            json!({"input": {"senderId": sender, "to": CUSTOMER, "text": "Yes, in blue.", "replyTo": inbound}}),
        )
        .await;
    assert!(text["errors"].is_null(), "{text}");
    let expected = [
        json!({"type": "image", "image": {"link": "https://cdn.example.com/blue.jpg", "caption": "In blue"}}),
        json!({"type": "video", "video": {"id": "1166846181421424"}}),
        json!({"type": "audio", "audio": {"link": "https://cdn.example.com/note.ogg"}}),
        json!({"type": "document", "document": {"link": "https://cdn.example.com/c.pdf", "caption": "Catalog",
            "filename": "catalog.pdf"}}),
        json!({"type": "sticker", "sticker": {"id": "798882015472548"}}),
        json!({"type": "location", "location": {"latitude": 19.4326, "longitude": -99.1332, "name": "Store",
            "address": "Av. Juárez 1"}}),
        json!({"type": "interactive", "interactive": {"type": "button",
            "header": {"type": "image", "image": {"link": "https://cdn.example.com/blue.jpg"}},
            "body": {"text": "Shall we reserve one?"}, "footer": {"text": "Acme"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                                   {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}}),
        json!({"type": "interactive", "interactive": {"type": "list", "header": {"type": "text", "text": "Sizes"},
            "body": {"text": "Pick your size"}, "action": {"button": "Sizes", "sections": [
                {"title": "Men", "rows": [{"id": "m-m", "title": "M", "description": "Chest 96-101 cm"}]},
                {"title": "Women", "rows": [{"id": "w-s", "title": "S"}]}]}}}),
        json!({"type": "reaction", "reaction": {"message_id": "wamid.IN-1", "emoji": "👍"}}),
        json!({"type": "text", "text": {"preview_url": false, "body": "Yes, in blue."},
            "context": {"message_id": "wamid.IN-1"}}),
    ];
    assert_eq!(delivered(&meta, expected.len()).await, expected);
    let kinds: Vec<&str> = answers
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "IMAGE",
            "VIDEO",
            "AUDIO",
            "DOCUMENT",
            "STICKER",
            "LOCATION",
            "INTERACTIVE",
            "INTERACTIVE",
            "REACTION"
        ]
    );
    let bodies: Vec<&str> = answers
        .iter()
        .map(|a| a["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "In blue",
            "[video]",
            "[audio]",
            "Catalog",
            "[sticker]",
            "Store, Av. Juárez 1",
            "Shall we reserve one?",
            "Pick your size",
            "👍"
        ]
    );
    assert_eq!(
        answers[0]["payload"], sends[0],
        "the content is kept on the message"
    );
}

/// Meta's limits, the window and the replied message are checked before anything is stored.
async fn what_meta_would_refuse_never_leaves(app: TestApp) {
    let meta = Meta::start().await;
    let sender = cloud_app(&app, &meta).await;
    let closed = send(&app, &sender, json!({"image": {"id": "1"}}), json!({})).await;
    assert_eq!(error_code(&closed), Some("OUTSIDE_24H_WINDOW"), "{closed}");
    customer_writes(&app, "wamid.IN-2", "Hi").await;
    let other_customer = app.sandbox_sender("+14155550100").await;
    let elsewhere = app
        .customer_writes(&other_customer, "+14155550177", "Hello")
        .await["id"]
        .clone();
    let button = |id: &str| json!({"id": id, "title": id});
    let cases = [
        (
            json!({"buttons": {"body": "Pick", "buttons": [button("a"), button("b"), button("c"), button("d")]}}),
            json!({}),
            "content.buttons.buttons",
        ),
        (
            json!({"buttons": {"body": "Pick", "buttons": [{"id": "a", "title": "A title of twenty-one"}]}}),
            json!({}),
            "content.buttons.buttons[0].title",
        ),
        (
            json!({"list": {"body": "Menu", "button": "Open", "sections": [{"rows":
            (0..11).map(|i| json!({"id": format!("r{i}"), "title": "Row"})).collect::<Vec<_>>()}]}}),
            json!({}),
            "content.list.sections",
        ),
        (
            json!({"audio": {"id": "1", "caption": "no"}}),
            json!({}),
            "content.audio.caption",
        ),
        (json!({"image": {}}), json!({}), "content.image"),
        (
            json!({"image": {"link": "https://a.example/x.jpg", "caption": "x".repeat(1025)}}),
            json!({}),
            "content.image.caption",
        ),
        (
            json!({"location": {"latitude": 120.0, "longitude": 0.0}}),
            json!({}),
            "content.location",
        ),
        (
            json!({"reaction": {"messageId": elsewhere, "emoji": "👍"}}),
            json!({}),
            "content.reaction.messageId",
        ),
        (
            json!({"reaction": {"messageId": uuid::Uuid::now_v7(), "emoji": "ok"}}),
            json!({}),
            "content.reaction.emoji",
        ),
        (
            json!({"image": {"id": "1"}}),
            json!({"replyTo": elsewhere}),
            "replyTo",
        ),
    ];
    for (content, extra, field) in cases {
        let refused = send(&app, &sender, content.clone(), extra).await;
        assert_eq!(
            error_code(&refused),
            Some("VALIDATION_FAILED"),
            "{content}: {refused}"
        );
        assert_eq!(error_fields(&refused), [field], "{content}: {refused}");
    }
    let two_kinds = send(
        &app,
        &sender,
        json!({"image": {"id": "1"}, "video": {"id": "2"}}),
        json!({}),
    )
    .await;
    assert!(two_kinds["errors"].is_array(), "{two_kinds}");
    assert!(
        meta.requests("POST", &format!("/{PN}/messages"))
            .await
            .is_empty(),
        "a request reached Meta"
    );
}

/// A `send_message` step answers a customer's message with buttons, quoting it; the step's
/// content is checked when the flow is saved.
async fn a_flow_step_sends_buttons_in_reply(app: TestApp) {
    let meta = Meta::start().await;
    let sender = cloud_app(&app, &meta).await;
    let definition = |content: Value| {
        json!({"trigger": {"type": "message_received", "senderId": sender},
               "steps": [{"id": "ask", "type": "send_message", "senderId": sender,
                          "to": "{{ trigger.customer_phone }}", "replyTo": "{{ trigger.message_id }}",
                          "content": content}]})
    };
    let wrong = app
        .gql(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"input": {"name": "Wrong", "definition": definition(json!({"gif": {"link": "x"}}))}}),
        )
        .await;
    assert_eq!(error_code(&wrong), Some("VALIDATION_FAILED"), "{wrong}");
    assert_eq!(error_fields(&wrong), ["steps[0].content"], "{wrong}");
    live_flow(
        &app,
        definition(
            json!({"buttons": {"body": "Hi {{ trigger.customer_name }}, track or talk?",
            "buttons": [{"id": "track", "title": "Track"}, {"id": "agent", "title": "Agent"}]}}),
        ),
    )
    .await;
    customer_writes(&app, "wamid.IN-3", "Hello").await;
    let sent = delivered(&meta, 1).await;
    assert_eq!(
        sent[0],
        json!({"type": "interactive", "context": {"message_id": "wamid.IN-3"}, "interactive": {
            "type": "button", "body": {"text": "Hi Ana, track or talk?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "track", "title": "Track"}},
                                   {"type": "reply", "reply": {"id": "agent", "title": "Agent"}}]}}})
    );
}

/// SANDBOX takes the same content and stores it.
async fn the_sandbox_sends_them_too(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    let closed = send(
        &app,
        &sender,
        json!({"location": {"latitude": 1.0, "longitude": 2.0}}),
        json!({}),
    )
    .await;
    assert_eq!(error_code(&closed), Some("OUTSIDE_24H_WINDOW"), "{closed}");
    app.customer_writes(&sender, CUSTOMER, "Where are you?")
        .await;
    let sent = send(
        &app,
        &sender,
        json!({"location": {"latitude": 1.5, "longitude": 2.5, "name": "Shop"}}),
        json!({}),
    )
    .await;
    assert_eq!(sent["data"]["sendMessage"]["kind"], "LOCATION", "{sent}");
    assert_eq!(sent["data"]["sendMessage"]["body"], "Shop");
    let too_many = send(
        &app,
        &sender,
        json!({"buttons": {"body": "x", "buttons": []}}),
        json!({}),
    )
    .await;
    assert_eq!(
        error_fields(&too_many),
        ["content.buttons.buttons"],
        "{too_many}"
    );
}

/// A lone `{{ … }}` keeps its type, so a location can come from run data; content that is not a
/// message once rendered, or a `replyTo` that is no message id, fails the step for good.
async fn a_flow_step_renders_content_with_its_types(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    app.customer_writes(&sender, CUSTOMER, "Where is the shop?")
        .await;
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "where", "type": "send_message", "senderId": sender, "to": "{{ trigger.phone }}",
             "content": {"location": {"latitude": "{{ trigger.lat }}", "longitude": "{{ trigger.lng }}",
                                      "name": "Shop {{ trigger.city }}"}}}]}),
    )
    .await;
    let run = run_flow(
        &app,
        &flow,
        json!({"phone": CUSTOMER, "lat": 19.4326, "lng": -99.1332, "city": "Centro"}),
    )
    .await;
    let done = run_in(&app, &run, "SUCCEEDED").await;
    assert_eq!(done["steps"][0]["output"]["body"], "Shop Centro", "{done}");
    let run = run_flow(
        &app,
        &flow,
        json!({"phone": CUSTOMER, "lat": "north", "lng": 0, "city": "X"}),
    )
    .await;
    let failed = run_in(&app, &run, "FAILED").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("content is not a message"), "{error}");
    assert_eq!(failed["steps"][0]["attempt"], 1, "not retried: {failed}");

    let (replying, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "r", "type": "send_message", "senderId": sender, "to": "{{ trigger.phone }}",
             "replyTo": "{{ trigger.message }}", "content": {"image": {"id": "1"}}}]}),
    )
    .await;
    let run = run_flow(
        &app,
        &replying,
        json!({"phone": CUSTOMER, "message": "wamid.not-ours"}),
    )
    .await;
    let failed = run_in(&app, &run, "FAILED").await;
    assert!(
        failed["error"].as_str().unwrap().contains("replyTo"),
        "{failed}"
    );
}

waflow_tests::on_both_databases!(
    a_flow_step_renders_content_with_its_types,
    every_kind_reaches_meta_in_its_shape,
    what_meta_would_refuse_never_leaves,
    a_flow_step_sends_buttons_in_reply,
    the_sandbox_sends_them_too
);
