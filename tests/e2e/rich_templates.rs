//! Templates as Meta has them (issue 17): the header's parameter (text, image, video, document,
//! location) and the buttons' (a URL's suffix, a quick reply's payload, a coupon code, a
//! one-time password) reach the Cloud API in Meta's exact shape, from the mutation and from a
//! flow step; what Meta would refuse is refused before any request leaves, on SANDBOX and
//! CLOUD_API alike, naming the component.

use crate::flows::{live_flow, run_flow, run_in};
use serde_json::{Value, json};
use waflow_tests::{Meta, TestApp, error_code, error_fields, eventually};

const PN: &str = "PN-RICH";
const CUSTOMER: &str = "+14155550123";

/// Templates as `GET /{waba-id}/message_templates` lists them.
fn catalog() -> Value {
    let t = |name: &str, category: &str, components: Value| {
        json!({"name": name, "language": "en_US", "status": "APPROVED", "category": category,
               "id": name, "components": components})
    };
    json!([
        t(
            "parcel",
            "UTILITY",
            json!([
            {"type": "BODY", "text": "Hi {{1}}, your parcel is on its way.", "example": {"body_text": [["Ana"]]}},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track",
                "url": "https://shop.example.com/track/{{1}}", "example": ["https://shop.example.com/track/PX-1"]}]}])
        ),
        t(
            "order_ready",
            "UTILITY",
            json!([
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1h"]}},
            {"type": "BODY", "text": "Your order {{1}} is ready.", "example": {"body_text": [["A-1001"]]}}])
        ),
        t(
            "store_visit",
            "MARKETING",
            json!([
            {"type": "HEADER", "format": "LOCATION"},
            {"type": "BODY", "text": "See you at {{1}}."},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Stop promos"},
                {"type": "COPY_CODE", "example": "SAVE10"},
                {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+14155550100"},
                {"type": "URL", "text": "Menu", "url": "https://shop.example.com/menu"}]}])
        ),
        t(
            "invoice",
            "UTILITY",
            json!([
            {"type": "HEADER", "format": "DOCUMENT"},
            {"type": "BODY", "text": "Your invoice is attached."}])
        ),
        t(
            "teaser",
            "MARKETING",
            json!([
            {"type": "HEADER", "format": "VIDEO"},
            {"type": "BODY", "text": "New season. Reply STOP to opt out."}])
        ),
        t(
            "sale",
            "MARKETING",
            json!([
            {"type": "HEADER", "format": "TEXT", "text": "Sale starts {{sale_date}}"},
            {"type": "BODY", "text": "Hi {{first_name}}! Reply STOP to opt out."}])
        ),
        t(
            "login_code",
            "AUTHENTICATION",
            json!([
            {"type": "BODY", "text": "*{{1}}* is your verification code."},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]}])
        ),
    ])
}

/// A Cloud API sender with the catalog synced.
async fn synced_sender(app: &TestApp, meta: &Meta) -> String {
    meta.accepts_messages(PN).await;
    let sender = app.cloud_sender(meta, "+14155550199", PN).await;
    meta.lists_templates(catalog()).await;
    assert_eq!(app.sync_templates(&sender).await, 7);
    sender
}

/// `sendTemplateMessage` of `name` with the input's other fields from `extra`.
async fn send(app: &TestApp, sender: &str, name: &str, extra: Value) -> Value {
    let mut input =
        json!({"senderId": sender, "templateName": name, "language": "en_US", "to": CUSTOMER});
    for (key, value) in extra.as_object().unwrap() {
        input[key] = value.clone();
    }
    app.gql(
        "mutation($input: SendTemplateMessageInput!) { sendTemplateMessage(input: $input) { id status } }",
        json!({"input": input}),
    )
    .await
}

/// Asserts the send was accepted (it is queued, then delivered by a worker).
fn accepted(answer: &Value, what: &str) {
    assert_eq!(
        answer["data"]["sendTemplateMessage"]["status"], "QUEUED",
        "{what}: {answer}"
    );
}

/// The `template` objects that reached Meta, once `n` have.
async fn delivered(meta: &Meta, n: usize) -> Vec<Value> {
    eventually(&format!("{n} sends to reach Meta"), || async {
        let sent = sent_templates(meta).await;
        assert!(sent.len() <= n, "more than {n} sends: {sent:#?}");
        (sent.len() == n).then_some(sent)
    })
    .await
}

/// The `template` objects that reached Meta, in order.
async fn sent_templates(meta: &Meta) -> Vec<Value> {
    meta.requests("POST", &format!("/{PN}/messages"))
        .await
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["to"], "14155550123");
            assert_eq!(body["type"], "template");
            body["template"].clone()
        })
        .collect()
}

fn refused_for(body: &Value, component: &str) {
    assert_eq!(
        error_code(body),
        Some("TEMPLATE_VARIABLES_MISMATCH"),
        "{body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(component), "{component}: {message}");
}

async fn stored_messages(app: &TestApp) -> usize {
    app.ok(
        "{ conversations(first: 5) { edges { node { messageCount } } } }",
        json!({}),
    )
    .await["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["node"]["messageCount"].as_u64().unwrap() as usize)
        .sum()
}

/// The issue's two inputs: refused while their parameter is missing (Meta would answer 132000
/// and 132012), sent in Meta's shape once it is given.
async fn the_issue_s_templates_are_sent_with_their_parameters(app: TestApp) {
    let meta = Meta::start().await;
    let sender = synced_sender(&app, &meta).await;
    refused_for(
        &send(&app, &sender, "parcel", json!({"variables": ["Ana"]})).await,
        "buttons[0] (URL)",
    );
    // The suffix is the button's, not the body's: two body values are one too many.
    let two = send(
        &app,
        &sender,
        "parcel",
        json!({"variables": ["Ana", "PX-1001"]}),
    )
    .await;
    assert_eq!(
        error_code(&two),
        Some("TEMPLATE_VARIABLES_MISMATCH"),
        "{two}"
    );
    refused_for(
        &send(
            &app,
            &sender,
            "order_ready",
            json!({"variables": ["A-1001"]}),
        )
        .await,
        "header",
    );
    assert!(
        sent_templates(&meta).await.is_empty(),
        "a request reached Meta"
    );
    assert_eq!(stored_messages(&app).await, 0);

    let parcel = send(
        &app,
        &sender,
        "parcel",
        json!({"variables": ["Ana"], "buttons": [{"index": 0, "text": "PX-1001"}]}),
    )
    .await;
    accepted(&parcel, "parcel");
    let ready = send(
        &app,
        &sender,
        "order_ready",
        json!({"variables": ["A-1001"], "header": {"image": {"link": "https://cdn.example.com/a-1001.jpg"}}}),
    )
    .await;
    accepted(&ready, "ready");
    assert_eq!(
        delivered(&meta, 2).await,
        [
            json!({"name": "parcel", "language": {"code": "en_US"}, "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
                {"type": "button", "sub_type": "url", "index": "0",
                 "parameters": [{"type": "text", "text": "PX-1001"}]}]}),
            json!({"name": "order_ready", "language": {"code": "en_US"}, "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/a-1001.jpg"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]}]}),
        ]
    );
}

/// Every other component kind, each request exactly as Meta documents it.
async fn every_component_kind_reaches_meta_in_its_shape(app: TestApp) {
    let meta = Meta::start().await;
    let sender = synced_sender(&app, &meta).await;
    let sends = [
        (
            "store_visit",
            json!({"variables": ["Main St"],
            "header": {"location": {"latitude": 19.4326, "longitude": -99.1332, "name": "Centro", "address": "Av. Juárez 1"}},
            "buttons": [{"index": 1, "couponCode": "SAVE10"}, {"index": 0, "payload": "stop-promos"}]}),
        ),
        (
            "invoice",
            json!({"header": {"document": {"id": "1037543291543636", "filename": "invoice-7.pdf"}}}),
        ),
        (
            "teaser",
            json!({"header": {"video": {"link": "https://cdn.example.com/teaser.mp4"}}}),
        ),
        (
            "sale",
            json!({"namedVariables": {"first_name": "Ana"}, "header": {"text": "Friday"}}),
        ),
        (
            "login_code",
            json!({"variables": ["482913"], "buttons": [{"index": 0, "text": "482913"}]}),
        ),
    ];
    for (name, extra) in sends {
        let sent = send(&app, &sender, name, extra).await;
        accepted(&sent, name);
    }
    let components: Vec<Value> = delivered(&meta, 5)
        .await
        .into_iter()
        .map(|t| t["components"].clone())
        .collect();
    assert_eq!(
        components,
        [
            json!([
                {"type": "header", "parameters": [{"type": "location", "location":
                    {"latitude": 19.4326, "longitude": -99.1332, "name": "Centro", "address": "Av. Juárez 1"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Main St"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "stop-promos"}]},
                {"type": "button", "sub_type": "copy_code", "index": "1",
                 "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}]}]),
            json!([{"type": "header", "parameters": [{"type": "document", "document":
                {"id": "1037543291543636", "filename": "invoice-7.pdf"}}]}]),
            json!([{"type": "header", "parameters": [{"type": "video", "video":
                {"link": "https://cdn.example.com/teaser.mp4"}}]}]),
            json!([
                {"type": "header", "parameters": [{"type": "text", "parameter_name": "sale_date", "text": "Friday"}]},
                {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]}]),
            json!([
                {"type": "body", "parameters": [{"type": "text", "text": "482913"}]},
                {"type": "button", "sub_type": "url", "index": "0",
                 "parameters": [{"type": "text", "text": "482913"}]}]),
        ]
    );
}

/// Each of Meta's limits is refused locally, naming the component; nothing is stored or sent.
async fn what_meta_would_refuse_never_leaves(app: TestApp) {
    let meta = Meta::start().await;
    let sender = synced_sender(&app, &meta).await;
    let visit = |header: Value, buttons: Value| json!({"variables": ["Main St"], "header": header, "buttons": buttons});
    let here = json!({"location": {"latitude": 19.4, "longitude": -99.1}});
    let coupon = json!([{"index": 1, "couponCode": "SAVE10"}]);
    let cases = [
        (
            "order_ready",
            json!({"variables": ["A-1"], "header": {"video": {"link": "https://cdn.example.com/a.mp4"}}}),
            "header",
        ),
        (
            "order_ready",
            json!({"variables": ["A-1"], "header": {"image": {"link": "http://10.0.0.1/a.jpg",
            "id": "123"}}}),
            "header",
        ),
        (
            "order_ready",
            json!({"variables": ["A-1"], "header": {"image": {"link": "file:///etc/passwd"}}}),
            "header",
        ),
        (
            "parcel",
            json!({"variables": ["Ana"], "header": {"text": "Hi"},
            "buttons": [{"index": 0, "text": "PX"}]}),
            "header",
        ),
        (
            "parcel",
            json!({"variables": ["Ana"], "buttons": [{"index": 0, "text": "PX"}, {"index": 3, "text": "PX"}]}),
            "buttons[3]",
        ),
        (
            "sale",
            json!({"namedVariables": {"first_name": "Ana"}, "header": {"text": "x".repeat(50)}}),
            "header",
        ),
        (
            "store_visit",
            visit(
                json!({"location": {"latitude": 91.0, "longitude": 0.0}}),
                coupon.clone(),
            ),
            "header",
        ),
        (
            "store_visit",
            visit(here.clone(), json!([{"index": 1, "couponCode": "SAVE-10"}])),
            "buttons[1] (COPY_CODE)",
        ),
        (
            "store_visit",
            visit(here.clone(), json!([])),
            "buttons[1] (COPY_CODE)",
        ),
        (
            "store_visit",
            visit(
                here.clone(),
                json!([{"index": 1, "couponCode": "SAVE10"}, {"index": 2, "text": "x"}]),
            ),
            "buttons[2] (PHONE_NUMBER)",
        ),
        (
            "store_visit",
            visit(
                here.clone(),
                json!([{"index": 1, "couponCode": "SAVE10"}, {"index": 3, "text": "x"}]),
            ),
            "buttons[3] (URL)",
        ),
        (
            "login_code",
            json!({"variables": ["482913"], "buttons": [{"index": 0, "text": "1234567890123456"}]}),
            "buttons[0] (OTP)",
        ),
        (
            "login_code",
            json!({"variables": ["482913"]}),
            "buttons[0] (OTP)",
        ),
    ];
    for (name, extra, component) in cases {
        refused_for(&send(&app, &sender, name, extra).await, component);
    }
    let both = send(
        &app,
        &sender,
        "store_visit",
        visit(
            here,
            json!([{"index": 1, "couponCode": "SAVE10", "payload": "x"}]),
        ),
    )
    .await;
    refused_for(&both, "buttons[1] (COPY_CODE)");
    let oneof = send(
        &app,
        &sender,
        "order_ready",
        json!({"variables": ["A-1"], "header": {"text": "x", "image": {"link": "https://a.example/b.jpg"}}}),
    )
    .await;
    assert!(
        oneof["errors"].is_array(),
        "a header of two kinds was taken: {oneof}"
    );
    assert!(
        sent_templates(&meta).await.is_empty(),
        "a request reached Meta"
    );
    assert_eq!(stored_messages(&app).await, 0);
}

/// SANDBOX applies CLOUD_API's checks, to templates created through the API.
async fn the_sandbox_checks_the_same(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    let created = app
        .ok(
            "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
            json!({"input": {"senderId": sender, "name": "order_ready", "language": "en_US", "category": "UTILITY",
                   "components": {"header": {"format": "IMAGE", "example": "4::aW1hZ2U=:ARZ"}, "body": "Your order {{1}} is ready.",
                                  "bodyExamples": ["A-1001"],
                                  "buttons": [{"type": "URL", "text": "Track",
                                               "url": "https://shop.example.com/track/{{1}}",
                                               "example": "https://shop.example.com/track/PX-1"}]}}}),
        )
        .await;
    app.ok(
        "mutation($id: ID!) { setTemplateStatus(id: $id, status: APPROVED) { id } }",
        json!({"id": created["createTemplate"]["id"]}),
    )
    .await;
    let image = json!({"image": {"link": "https://cdn.example.com/a-1001.jpg"}});
    refused_for(
        &send(
            &app,
            &sender,
            "order_ready",
            json!({"variables": ["A-1001"],
            "buttons": [{"index": 0, "text": "PX-1"}]}),
        )
        .await,
        "header",
    );
    refused_for(
        &send(
            &app,
            &sender,
            "order_ready",
            json!({"variables": ["A-1001"], "header": image}),
        )
        .await,
        "buttons[0] (URL)",
    );
    assert_eq!(stored_messages(&app).await, 0);
    let sent = send(
        &app,
        &sender,
        "order_ready",
        json!({"variables": ["A-1001"], "header": image, "buttons": [{"index": 0, "text": "PX-1"}]}),
    )
    .await;
    accepted(&sent, "sent");
    assert_eq!(stored_messages(&app).await, 1);
}

/// `createTemplate` refuses the button and category mistakes Meta's review would.
async fn create_template_refuses_what_meta_would(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    let create = |category: &str, components: Value| {
        json!({"input": {"senderId": sender, "name": "t", "language": "en_US", "category": category,
               "components": components}})
    };
    let url = |url: &str| json!({"type": "URL", "text": "Open", "url": url});
    let cases = [
        (
            create(
                "MARKETING",
                json!({"body": "Sale", "buttons": [{"type": "COPY_CODE", "text": "Copy"}]}),
            ),
            "components.buttons[0].example",
        ),
        (
            create(
                "MARKETING",
                json!({"body": "Sale", "buttons": [{"type": "COPY_CODE", "text": "Copy",
            "example": "SAVE-10"}]}),
            ),
            "components.buttons[0].example",
        ),
        (
            create(
                "UTILITY",
                json!({"body": "Hi", "buttons": [url("https://a.example/{{1}}/track")]}),
            ),
            "components.buttons[0].url",
        ),
        (
            create(
                "UTILITY",
                json!({"body": "Hi", "buttons": [url("https://a.example/1"),
            url("https://a.example/2"), url("https://a.example/3")]}),
            ),
            "components.buttons",
        ),
        (
            create(
                "MARKETING",
                json!({"body": "Hi", "buttons": [{"type": "OTP", "text": "Copy code"}]}),
            ),
            "components.buttons",
        ),
        (
            create(
                "AUTHENTICATION",
                json!({"body": "{{1}} is your code.", "bodyExamples": ["123456"], "header": {"format": "TEXT", "text": "Code"},
            "buttons": [{"type": "OTP", "text": "Copy code"}]}),
            ),
            "components.header",
        ),
        (
            create(
                "AUTHENTICATION",
                json!({"body": "{{1}} is your code.", "bodyExamples": ["123456"]}),
            ),
            "components.buttons",
        ),
        // Meta's review needs a sample of everything that varies.
        (
            create("MARKETING", json!({"body": "Hi {{1}}, {{2}} off"})),
            "components.bodyExamples",
        ),
        (
            create(
                "MARKETING",
                json!({"body": "Hi {{1}}", "bodyExamples": ["Ana", "Bo"]}),
            ),
            "components.bodyExamples",
        ),
        (
            create(
                "MARKETING",
                json!({"body": "Sale", "header": {"format": "TEXT", "text": "Sale on {{1}}"}}),
            ),
            "components.header.example",
        ),
        (
            create(
                "UTILITY",
                json!({"body": "Invoice", "header": {"format": "DOCUMENT"}}),
            ),
            "components.header.example",
        ),
        (
            create(
                "UTILITY",
                json!({"body": "Hi", "buttons": [url("https://a.example/track/{{1}}")]}),
            ),
            "components.buttons[0].example",
        ),
        // Meta writes an AUTHENTICATION template's text: one placeholder, no footer.
        (
            create(
                "AUTHENTICATION",
                json!({"body": "Your code is ready", "buttons": [{"type": "OTP", "text": "Copy code"}]}),
            ),
            "components.body",
        ),
        (
            create(
                "AUTHENTICATION",
                json!({"body": "{{1}} is your code.", "bodyExamples": ["123456"], "footer": "Valid 10 minutes",
                       "buttons": [{"type": "OTP", "text": "Copy code"}]}),
            ),
            "components.footer",
        ),
    ];
    for (input, field) in cases {
        let refused = app
            .gql(
                "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
                input.clone(),
            )
            .await;
        assert_eq!(
            error_code(&refused),
            Some("VALIDATION_FAILED"),
            "{input}: {refused}"
        );
        assert_eq!(error_fields(&refused), [field], "{input}: {refused}");
    }
    // The category rule holds when an edit changes the category too.
    let utility = app
        .ok(
            "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
            {
                let mut input = create(
                    "UTILITY",
                    json!({"body": "Code", "header": {"format": "TEXT", "text": "Hi"}}),
                );
                input["input"]["name"] = json!("recategorized");
                input
            },
        )
        .await["createTemplate"]["id"]
        .clone();
    let recategorized = app
        .gql(
            "mutation($id: ID!) { updateTemplate(id: $id, input: {category: AUTHENTICATION}) { id } }",
            json!({"id": utility}),
        )
        .await;
    assert_eq!(
        error_code(&recategorized),
        Some("VALIDATION_FAILED"),
        "{recategorized}"
    );
    assert_eq!(
        error_fields(&recategorized),
        ["components.header", "components.body", "components.buttons"],
        "{recategorized}"
    );
    let fine = create(
        "AUTHENTICATION",
        json!({"body": "{{1}} is your code.", "bodyExamples": ["123456"],
               "buttons": [{"type": "OTP", "text": "Copy code"}]}),
    );
    app.ok(
        "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
        fine,
    )
    .await;
}

/// A `send_template` step renders `{{ }}` in its header and buttons from the run's data, and
/// its definition is checked there like every other field.
async fn a_flow_step_sends_header_and_buttons_from_run_data(app: TestApp) {
    let meta = Meta::start().await;
    let sender = synced_sender(&app, &meta).await;
    let step = |image: &str| {
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "ready", "type": "send_template", "senderId": sender, "template": "order_ready",
             "language": "en_US", "to": "{{ trigger.phone }}", "variables": ["{{ trigger.order }}"],
             "header": {"image": {"link": image}}},
            {"id": "track", "type": "send_template", "senderId": sender, "template": "parcel",
             "language": "en_US", "to": "{{ trigger.phone }}", "variables": ["{{ trigger.name }}"],
             "buttons": [{"index": 0, "text": "{{ trigger.tracking }}"}]}]})
    };
    let broken = app
        .gql(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"input": {"name": "Broken", "definition": step("{{ trigger.photo")}}),
        )
        .await;
    assert_eq!(error_code(&broken), Some("VALIDATION_FAILED"), "{broken}");
    assert_eq!(
        error_fields(&broken),
        ["steps[0].header.image.link"],
        "{broken}"
    );

    let (flow, _) = live_flow(
        &app,
        step("https://cdn.example.com/{{ trigger.order }}.jpg"),
    )
    .await;
    let run = run_flow(
        &app,
        &flow,
        json!({"phone": CUSTOMER, "name": "Ana", "order": "A-1001", "tracking": "PX-1001"}),
    )
    .await;
    run_in(&app, &run, "SUCCEEDED").await;
    let sent = delivered(&meta, 2).await;
    assert_eq!(
        sent[0]["components"][0],
        json!({"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/A-1001.jpg"}}]})
    );
    assert_eq!(
        sent[1]["components"][1],
        json!({"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "PX-1001"}]})
    );
}

/// A button's index counts every button Meta lists, those Waflow sends nothing for (FLOW,
/// VOICE_CALL…) too: Meta refuses a URL suffix sent at the wrong index.
async fn a_button_index_counts_every_listed_button(app: TestApp) {
    let meta = Meta::start().await;
    meta.accepts_messages(PN).await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    meta.lists_templates(
        json!([{"name": "booking", "language": "en_US", "status": "APPROVED",
        "category": "UTILITY", "id": "booking", "components": [
            {"type": "BODY", "text": "Your booking is confirmed."},
            {"type": "BUTTONS", "buttons": [
                {"type": "FLOW", "text": "Change it", "flow_id": "1234", "flow_action": "navigate"},
                {"type": "VOICE_CALL", "text": "Call us"},
                {"type": "URL", "text": "Details", "url": "https://shop.example.com/b/{{1}}",
                 "example": ["https://shop.example.com/b/B-1"]}]}]}]),
    )
    .await;
    assert_eq!(app.sync_templates(&sender).await, 1);
    let buttons = app
        .ok(
            "{ templates(first: 5) { edges { node { components { buttons { type } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        buttons["templates"]["edges"][0]["node"]["components"]["buttons"],
        json!([{"type": "FLOW"}, {"type": "VOICE_CALL"}, {"type": "URL"}])
    );
    refused_for(
        &send(
            &app,
            &sender,
            "booking",
            json!({"buttons": [{"index": 0, "text": "B-7"}]}),
        )
        .await,
        "buttons[0] (FLOW)",
    );
    accepted(
        &send(
            &app,
            &sender,
            "booking",
            json!({"buttons": [{"index": 2, "text": "B-7"}]}),
        )
        .await,
        "the URL button's suffix",
    );
    let sent = delivered(&meta, 1).await;
    assert_eq!(
        sent[0]["components"],
        json!([{"type": "button", "sub_type": "url", "index": "2", "parameters": [{"type": "text", "text": "B-7"}]}])
    );
    // Meta took it: the message carries the wamid Meta answered.
    eventually("Meta's wamid on the message", || async {
        let data = app
            .ok("{ conversations(first: 5) { edges { node { messages(first: 5) { edges { node { status providerMessageId } } } } } } }", json!({}))
            .await;
        let message = &data["conversations"]["edges"][0]["node"]["messages"]["edges"][0]["node"];
        assert_ne!(message["status"], "FAILED", "{message}");
        message["providerMessageId"]
            .as_str()
            .is_some_and(|id| id.starts_with("wamid.ACCEPTED"))
            .then_some(())
    })
    .await;
}

waflow_tests::on_both_databases!(
    a_button_index_counts_every_listed_button,
    the_issue_s_templates_are_sent_with_their_parameters,
    every_component_kind_reaches_meta_in_its_shape,
    what_meta_would_refuse_never_leaves,
    the_sandbox_checks_the_same,
    create_template_refuses_what_meta_would,
    a_flow_step_sends_header_and_buttons_from_run_data
);
