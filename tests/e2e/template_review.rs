//! `createTemplate` on a Cloud API sender (issue 17): every component goes to Meta's review in
//! Meta's shape with the samples the review needs (header text and handle, body, dynamic URL),
//! and an AUTHENTICATION template goes as Meta creates one, without text of ours.

use serde_json::{Value, json};
use waflow_tests::{BUSINESS_ACCOUNT_ID, Meta, TestApp};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

const PN: &str = "PN-REVIEW";
const HANDLE: &str = "4::aW1hZ2UvanBlZw==:ARZxYR2Dx0FJ2lO5pA";

async fn submitted(app: &TestApp, meta: &Meta, sender: &str, input: Value) -> Value {
    let before = meta.requests("POST", "/message_templates").await.len();
    let mut input = input;
    input["senderId"] = json!(sender);
    app.ok(
        "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id status } }",
        json!({"input": input}),
    )
    .await;
    let requests = meta.requests("POST", "/message_templates").await;
    assert_eq!(requests.len(), before + 1);
    serde_json::from_slice(&requests[before].body).unwrap()
}

async fn templates_reach_review_with_their_samples(app: TestApp) {
    let meta = Meta::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates"
        )))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "594425479261596", "status": "PENDING"})),
        )
        .mount(&meta.server)
        .await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;

    let order_ready = submitted(&app, &meta, &sender, json!({"name": "order_ready", "language": "en_US", "category": "UTILITY",
        "components": {"header": {"format": "IMAGE", "example": HANDLE}, "body": "Your order {{1}} is ready.",
            "bodyExamples": ["A-1001"],
            "buttons": [{"type": "URL", "text": "Track", "url": "https://shop.example.com/track/{{1}}",
                         "example": "https://shop.example.com/track/PX-1001"}]}})).await;
    assert_eq!(
        order_ready["components"],
        json!([
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [HANDLE]}},
            {"type": "BODY", "text": "Your order {{1}} is ready.", "example": {"body_text": [["A-1001"]]}},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://shop.example.com/track/{{1}}",
                "example": ["https://shop.example.com/track/PX-1001"]}]}])
    );

    let sale = submitted(&app, &meta, &sender, json!({"name": "sale", "language": "en_US", "category": "MARKETING",
        "components": {"header": {"format": "TEXT", "text": "Sale starts {{sale_date}}", "example": "1 May"},
            "body": "Hi {{first_name}}! Reply STOP to opt out.", "bodyExamples": ["Ana"]}})).await;
    assert_eq!(sale["parameter_format"], "NAMED");
    assert_eq!(
        sale["components"],
        json!([
            {"type": "HEADER", "format": "TEXT", "text": "Sale starts {{sale_date}}",
             "example": {"header_text_named_params": [{"param_name": "sale_date", "example": "1 May"}]}},
            {"type": "BODY", "text": "Hi {{first_name}}! Reply STOP to opt out.",
             "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}}])
    );

    let positional = submitted(
        &app,
        &meta,
        &sender,
        json!({"name": "arrival", "language": "en_US", "category": "UTILITY",
        "components": {"header": {"format": "TEXT", "text": "Arriving {{1}}", "example": "today"},
            "body": "Your parcel {{1}} arrives soon.", "bodyExamples": ["PX-1"]}}),
    )
    .await;
    assert_eq!(
        positional["components"][0],
        json!({"type": "HEADER", "format": "TEXT", "text": "Arriving {{1}}", "example": {"header_text": ["today"]}})
    );

    let login = submitted(
        &app,
        &meta,
        &sender,
        json!({"name": "login_code", "language": "en_US", "category": "AUTHENTICATION",
        "components": {"body": "{{1}} is your verification code.", "bodyExamples": ["482913"],
            "buttons": [{"type": "OTP", "text": "Copy code"}]}}),
    )
    .await;
    assert_eq!(
        login,
        json!({"name": "login_code", "language": "en_US", "category": "AUTHENTICATION", "parameter_format": "POSITIONAL",
            "components": [
                {"type": "BODY", "add_security_recommendation": false},
                {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]}]})
    );
}

waflow_tests::on_both_databases!(templates_reach_review_with_their_samples);
