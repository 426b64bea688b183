//! Templates with a media header or a dynamic URL button (issue 17's inputs): Waflow sends body
//! variables only, so such a template is refused before any request leaves, naming the
//! component, on SANDBOX and CLOUD_API alike; Meta would refuse it (132012, 132000).

use serde_json::{Value, json};
use waflow_tests::{BUSINESS_ACCOUNT_ID, Meta, TestApp, error_code};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

const PN: &str = "PN-RICH";

async fn send(app: &TestApp, sender: &str, name: &str, variables: Value) -> Value {
    app.gql(
        "mutation($input: SendTemplateMessageInput!) { sendTemplateMessage(input: $input) { id } }",
        json!({"input": {"senderId": sender, "templateName": name, "language": "en_US",
                         "to": "+14155550123", "variables": variables}}),
    )
    .await
}

fn refused_for(body: &Value, component: &str) {
    assert_eq!(
        error_code(body),
        Some("TEMPLATE_VARIABLES_MISMATCH"),
        "{body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(component), "{message}");
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

/// The two templates, as `syncTemplates` brings them from Meta.
async fn header_and_button_templates_are_refused_before_meta(app: TestApp) {
    let meta = Meta::start().await;
    meta.accepts_messages(PN).await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    let list = format!("/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates");
    Mock::given(method("GET"))
        .and(path(list.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"name": "parcel", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "11",
             "components": [
                {"type": "BODY", "text": "Hi {{1}}, your parcel is on its way.", "example": {"body_text": [["Ana"]]}},
                {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track",
                    "url": "https://shop.example.com/track/{{1}}", "example": ["https://shop.example.com/track/PX-1"]}]}]},
            {"name": "order_ready", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "12",
             "components": [
                {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1h"]}},
                {"type": "BODY", "text": "Your order {{1}} is ready.", "example": {"body_text": [["A-1001"]]}}]}]})))
        .mount(&meta.server)
        .await;
    app.ok(
        "mutation($id: ID!) { syncTemplates(senderId: $id) { created } }",
        json!({"id": sender}),
    )
    .await;
    refused_for(
        &send(&app, &sender, "parcel", json!(["Ana"])).await,
        "buttons[0] (URL)",
    );
    refused_for(
        &send(&app, &sender, "parcel", json!(["Ana", "PX-1001"])).await,
        "buttons[0] (URL)",
    );
    refused_for(
        &send(&app, &sender, "order_ready", json!(["A-1001"])).await,
        "header",
    );
    assert!(
        meta.requests("POST", &format!("/{PN}/messages"))
            .await
            .is_empty(),
        "a request reached Meta"
    );
    assert_eq!(stored_messages(&app).await, 0);
}

/// SANDBOX applies the same rule as CLOUD_API: the image header it used to accept is refused.
async fn the_sandbox_refuses_them_too(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    for (name, header) in [
        ("order_ready", json!({"format": "IMAGE"})),
        ("greeting", json!({"format": "TEXT", "text": "Hello {{1}}"})),
    ] {
        let created = app
            .ok(
                "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
                json!({"input": {"senderId": sender, "name": name, "language": "en_US", "category": "UTILITY",
                       "components": {"header": header, "body": "Your order {{1}} is ready.",
                                      "bodyExamples": ["A-1001"]}}}),
            )
            .await;
        app.ok(
            "mutation($id: ID!) { setTemplateStatus(id: $id, status: APPROVED) { id } }",
            json!({"id": created["createTemplate"]["id"]}),
        )
        .await;
        refused_for(
            &send(&app, &sender, name, json!(["A-1001"])).await,
            "header",
        );
    }
    assert_eq!(stored_messages(&app).await, 0);
}

waflow_tests::on_both_databases!(
    header_and_button_templates_are_refused_before_meta,
    the_sandbox_refuses_them_too
);
