//! The WhatsApp Cloud API provider against a local stand-in for Meta: the exact requests that
//! leave (path, bearer token, JSON body) and how Meta's answers, errors included, come back.

use serde_json::{Value, json};
use waflow_tests::{
    ACCESS_TOKEN, APP_SECRET, BUSINESS_ACCOUNT_ID, Meta, TestApp, error_code, eventually,
    messages_webhook, meta_error,
};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{body_partial_json, header, method, path, query_param},
};

const CUSTOMER: &str = "+14155550123";
const PN: &str = "PN-100";

const SEND_TEMPLATE: &str = "mutation($input: SendTemplateMessageInput!) { sendTemplateMessage(input: $input) { \
    id status providerMessageId errorCode errorMessage } }";

/// Meta accepting a send: a fresh `wamid.` id per message, as the real API gives.
struct Accepts;

impl wiremock::Respond for Accepts {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "14155550123", "wa_id": "14155550123"}],
            "messages": [{"id": format!("wamid.OUT-{}", uuid::Uuid::now_v7().simple()), "message_status": "accepted"}]}))
    }
}

async fn meta_accepts(meta: &Meta) {
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .respond_with(Accepts)
        .mount(&meta.server)
        .await;
}

/// Meta lists these templates (one page) for the business account.
async fn meta_lists_templates(meta: &Meta, templates: Value) {
    Mock::given(method("GET"))
        .and(path(format!(
            "/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"data": templates, "paging": {"cursors": {"before": "a", "after": "b"}}}),
        ))
        .mount(&meta.server)
        .await;
}

fn meta_template(name: &str, body: &str, category: &str) -> Value {
    json!({"name": name, "language": "en_US", "status": "APPROVED", "category": category, "id": format!("tpl-{name}"),
           "components": [{"type": "BODY", "text": body}]})
}

async fn sync(app: &TestApp, sender_id: &str) -> Value {
    app.ok(
        "mutation($id: ID!) { syncTemplates(senderId: $id) { created updated } }",
        json!({"id": sender_id}),
    )
    .await["syncTemplates"]
        .clone()
}

async fn sends_reach_meta_exactly_as_documented(app: TestApp) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    meta_lists_templates(
        &meta,
        json!([
            meta_template("appointment", "Hi {{1}}, see you at {{2}}.", "UTILITY"),
            meta_template("named_hello", "Hi {{customer_name}}!", "UTILITY"),
        ]),
    )
    .await;
    assert_eq!(
        sync(&app, &sender_id).await,
        json!({"created": 2, "updated": 0})
    );
    meta_accepts(&meta).await;

    let data = app
        .ok(SEND_TEMPLATE, json!({"input": {"senderId": sender_id, "templateName": "appointment", "language": "en_US",
            "to": CUSTOMER, "variables": ["Ana", "10:30"]}}))
        .await;
    let provider_id = data["sendTemplateMessage"]["providerMessageId"]
        .as_str()
        .unwrap();
    assert!(
        provider_id.starts_with("wamid.OUT-"),
        "Meta's id is kept: {provider_id}"
    );
    assert_eq!(
        data["sendTemplateMessage"]["status"], "QUEUED",
        "accepted, not yet reported sent"
    );
    app.ok(
        SEND_TEMPLATE,
        json!({"input": {"senderId": sender_id, "templateName": "named_hello", "language": "en_US",
            "to": CUSTOMER, "namedVariables": {"customer_name": "Ana"}}}),
    )
    .await;

    // The customer writes (through the signed webhook), which opens the window for free text.
    let inbound = messages_webhook(
        PN,
        json!({
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "14155550123"}],
        "messages": [{"from": "14155550123", "id": "wamid.IN-1", "timestamp": "1700000000", "type": "text", "text": {"body": "Thanks!"}}]}),
    );
    let mut fresh = inbound.clone();
    fresh["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] =
        json!(chrono::Utc::now().timestamp().to_string());
    assert_eq!(app.webhook(&fresh, Some(APP_SECRET)).await, 200);
    app.ok(
        "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
        json!({"input": {"senderId": sender_id, "to": CUSTOMER, "text": "You're welcome"}}),
    )
    .await;

    let sent = meta.requests("POST", &format!("/{PN}/messages")).await;
    assert_eq!(sent.len(), 3);
    for request in &sent {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {ACCESS_TOKEN}").as_str()
        );
    }
    let bodies: Vec<Value> = sent
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        bodies[0],
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "14155550123",
        "type": "template", "template": {"name": "appointment", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "10:30"}]}]}})
    );
    assert_eq!(
        bodies[1]["template"]["components"][0]["parameters"],
        json!([{"type": "text", "parameter_name": "customer_name", "text": "Ana"}])
    );
    assert_eq!(
        bodies[2],
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "14155550123",
        "type": "text", "text": {"preview_url": false, "body": "You're welcome"}})
    );
}

/// A Cloud API sender whose approved UTILITY template `receipt` is synced from Meta.
async fn sender_with_receipt(app: &TestApp) -> (Meta, String) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    meta_lists_templates(
        &meta,
        json!([meta_template("receipt", "Your receipt", "UTILITY")]),
    )
    .await;
    sync(app, &sender_id).await;
    (meta, sender_id)
}

/// Meta's error codes come back by name; the message is stored FAILED with Meta's code.
async fn meta_errors_map_to_waflow_codes(app: TestApp) {
    let (meta, sender_id) = sender_with_receipt(&app).await;
    let cases = [
        ("14155550001", 400, 131047, "OUTSIDE_24H_WINDOW"),
        ("14155550002", 404, 132001, "TEMPLATE_NOT_FOUND"),
        ("14155550003", 429, 130429, "RATE_LIMITED"),
        ("14155550004", 429, 131056, "RATE_LIMITED"),
        ("14155550005", 400, 131026, "PROVIDER_ERROR"),
    ];
    for (to, status, code, _) in cases {
        Mock::given(method("POST"))
            .and(path(format!("/v21.0/{PN}/messages")))
            .and(body_partial_json(json!({"to": to})))
            .respond_with(
                ResponseTemplate::new(status).set_body_json(meta_error(code, "Meta says no")),
            )
            .mount(&meta.server)
            .await;
    }
    for (to, _, code, expected) in cases {
        let body = app
            .gql(SEND_TEMPLATE, json!({"input": {"senderId": sender_id, "templateName": "receipt", "language": "en_US", "to": format!("+{to}")}}))
            .await;
        assert_eq!(error_code(&body), Some(expected), "{code}: {body}");
        let extensions = &body["errors"][0]["extensions"];
        let message_id = extensions["messageId"]
            .as_str()
            .expect("the failed message is named");
        let stored = app
            .ok(
                "query($id: ID!) { message(id: $id) { status errorCode errorMessage } }",
                json!({"id": message_id}),
            )
            .await;
        assert_eq!(stored["message"]["status"], "FAILED");
        assert_eq!(stored["message"]["errorCode"], code.to_string());
        assert!(
            stored["message"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("Meta says no")
        );
        if expected == "RATE_LIMITED" {
            assert!(extensions["retryAfterSeconds"].as_u64().unwrap() >= 1);
        }
        if expected == "PROVIDER_ERROR" {
            assert_eq!(extensions["providerCode"], code.to_string());
        }
    }
}

async fn an_unreachable_api_fails_the_message_not_the_server(app: TestApp) {
    let (_meta, sender_id) = sender_with_receipt(&app).await;
    // A new server takes the token again: a stored secret stays with its server.
    app.ok("mutation($id: ID!) { updateSender(id: $id, input: {cloudApi: {apiBaseUrl: \"http://127.0.0.1:9/v21.0\", accessToken: \"EAAG-moved\"}}) { id } }",
        json!({"id": sender_id})).await;
    let body = app
        .gql(SEND_TEMPLATE, json!({"input": {"senderId": sender_id, "templateName": "receipt", "language": "en_US", "to": CUSTOMER}}))
        .await;
    // The credential change re-checks the sender, which may already have gone offline.
    let code = error_code(&body).unwrap();
    assert!(
        code == "PROVIDER_ERROR" || code == "SENDER_OFFLINE",
        "{body}"
    );
    if code == "PROVIDER_ERROR" {
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("cannot reach")
        );
    }
}

/// A send whose request went out and got no answer may have reached the customer: the message
/// stays QUEUED with DELIVERY_UNKNOWN, and asking again with its key sends nothing more.
async fn a_send_without_an_answer_is_never_sent_again(app: TestApp) {
    let (_meta, sender_id) = sender_with_receipt(&app).await;
    let silent = waflow_tests::SilentServer::start().await;
    app.move_sender_api(&sender_id, &format!("{}/v21.0", silent.base_url))
        .await;
    let input = json!({"input": {"senderId": sender_id, "templateName": "receipt", "language": "en_US",
        "to": CUSTOMER, "idempotencyKey": "receipt-1"}});
    let sent = app.ok(SEND_TEMPLATE, input.clone()).await["sendTemplateMessage"].clone();
    assert_eq!(sent["status"], "QUEUED", "{sent}");
    assert_eq!(sent["providerMessageId"], Value::Null);
    assert_eq!(sent["errorCode"], "DELIVERY_UNKNOWN");
    let why = sent["errorMessage"].as_str().unwrap();
    assert!(
        why.contains("no answer from the WhatsApp Cloud API"),
        "{why}"
    );
    assert!(why.contains("not sent again"), "{why}");
    let again = app.ok(SEND_TEMPLATE, input).await["sendTemplateMessage"].clone();
    assert_eq!(again["id"], sent["id"]);
    let heard = silent.heard();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(
        heard[0].request_line,
        format!("POST /v21.0/{PN}/messages HTTP/1.1")
    );
}

/// Meta answering 200 without a message id took the message: it is not FAILED (a retry would
/// send it twice) but unconfirmed, as above.
async fn an_accepted_send_without_an_id_is_unconfirmed(app: TestApp) {
    let (meta, sender_id) = sender_with_receipt(&app).await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "14155550123", "wa_id": "14155550123"}],
            "messages": []})))
        .mount(&meta.server)
        .await;
    let sent = app
        .ok(SEND_TEMPLATE, json!({"input": {"senderId": sender_id, "templateName": "receipt", "language": "en_US", "to": CUSTOMER}}))
        .await["sendTemplateMessage"]
        .clone();
    assert_eq!(sent["status"], "QUEUED", "{sent}");
    assert_eq!(sent["errorCode"], "DELIVERY_UNKNOWN");
    assert!(
        sent["errorMessage"]
            .as_str()
            .unwrap()
            .contains("without a message id"),
        "{sent}"
    );
}

/// The status refresh reads status, quality and tier; an expired token (190) takes the sender
/// offline with the reason shown.
async fn sender_status_comes_from_meta(app: TestApp) {
    let meta = Meta::start().await;
    let online = app.cloud_sender(&meta, "+14155550199", PN).await;
    let data = app.ok("query($id: ID!) { sender(id: $id) { status qualityRating messagingLimitTier statusReason } }", json!({"id": online})).await;
    assert_eq!(
        data["sender"],
        json!({"status": "ONLINE", "qualityRating": "GREEN", "messagingLimitTier": "TIER_1K", "statusReason": null})
    );
    let refreshes = meta.requests("GET", &format!("/{PN}")).await;
    assert!(refreshes[0].url.query().unwrap().contains("quality_rating"));

    Mock::given(method("GET"))
        .and(path("/v21.0/PN-EXPIRED"))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(401).set_body_json(meta_error(
            190,
            "Error validating access token: Session has expired",
        )))
        .mount(&meta.server)
        .await;
    let created = app
        .ok("mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
            json!({"input": {"phoneNumber": "+14155550198", "displayName": "Expired", "provider": "CLOUD_API",
                "cloudApi": {"phoneNumberId": "PN-EXPIRED", "businessAccountId": BUSINESS_ACCOUNT_ID,
                    "accessToken": ACCESS_TOKEN, "appSecret": APP_SECRET, "verifyToken": "v", "apiBaseUrl": meta.base_url()}}}))
        .await;
    let id = created["createSender"]["id"].as_str().unwrap().to_owned();
    let reason = eventually("the refresh to report the expired token", || async {
        let data = app
            .ok(
                "query($id: ID!) { sender(id: $id) { status statusReason } }",
                json!({"id": id}),
            )
            .await;
        data["sender"]["statusReason"]
            .as_str()
            .filter(|r| r.contains("190"))
            .map(str::to_owned)
    })
    .await;
    assert!(reason.contains("accessToken"), "{reason}");
    let data = app
        .ok(
            "query($id: ID!) { sender(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(data["sender"]["status"], "OFFLINE");
    let send = app
        .gql(SEND_TEMPLATE, json!({"input": {"senderId": id, "templateName": "x", "language": "en", "to": CUSTOMER}}))
        .await;
    assert_eq!(error_code(&send), Some("SENDER_OFFLINE"));
}

/// A Cloud API template goes to Meta's review; Meta's verdict arrives by webhook.
async fn templates_are_submitted_to_meta_and_reviewed_by_webhook(app: TestApp) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "594425479261596", "status": "PENDING", "category": "MARKETING"}),
        ))
        .mount(&meta.server)
        .await;
    let create =
        "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id status } }";
    let data = app
        .ok(create, json!({"input": {"senderId": sender_id, "name": "spring_sale", "language": "en_US", "category": "MARKETING",
            "components": {"header": {"format": "TEXT", "text": "Spring sale"}, "body": "Hi {{1}}, {{2}} off!",
                "bodyExamples": ["Ana", "20%"], "footer": "Reply STOP to opt out",
                "buttons": [{"type": "QUICK_REPLY", "text": "Stop"}]}}}))
        .await;
    let id = data["createTemplate"]["id"].clone();
    assert_eq!(data["createTemplate"]["status"], "PENDING");
    let submitted = meta.requests("POST", "/message_templates").await;
    assert_eq!(
        submitted[0].headers["authorization"],
        format!("Bearer {ACCESS_TOKEN}").as_str()
    );
    let body: Value = serde_json::from_slice(&submitted[0].body).unwrap();
    assert_eq!(
        body,
        json!({"name": "spring_sale", "language": "en_US", "category": "MARKETING", "parameter_format": "POSITIONAL",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Spring sale"},
            {"type": "BODY", "text": "Hi {{1}}, {{2}} off!", "example": {"body_text": [["Ana", "20%"]]}},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop"}]}]})
    );
    let refused = app
        .gql(
            "mutation($id: ID!) { setTemplateStatus(id: $id, status: APPROVED) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"));

    let review = |event: &str, reason: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": BUSINESS_ACCOUNT_ID, "time": 1751247548,
        "changes": [{"field": "message_template_status_update", "value": {"event": event, "message_template_id": 594425479261596u64,
            "message_template_name": "spring_sale", "message_template_language": "en_US", "reason": reason}}]}]})
    };
    let status = "query($id: ID!) { template(id: $id) { status statusReason } }";
    assert_eq!(
        app.webhook(&review("REJECTED", "INVALID_FORMAT"), Some(APP_SECRET))
            .await,
        200
    );
    assert_eq!(
        app.ok(status, json!({"id": id})).await["template"],
        json!({"status": "REJECTED", "statusReason": "INVALID_FORMAT"})
    );
    assert_eq!(
        app.webhook(&review("APPROVED", "NONE"), Some(APP_SECRET))
            .await,
        200
    );
    assert_eq!(
        app.ok(status, json!({"id": id})).await["template"],
        json!({"status": "APPROVED", "statusReason": null})
    );
    assert_eq!(
        app.webhook(&review("PAUSED", "NONE"), Some(APP_SECRET))
            .await,
        200
    );
    assert_eq!(
        app.ok(status, json!({"id": id})).await["template"]["status"],
        "PAUSED"
    );

    // Meta refusing the submission stores nothing.
    Mock::given(method("POST"))
        .and(path(format!(
            "/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates"
        )))
        .and(body_partial_json(json!({"name": "refused_one"})))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(meta_error(100, "Invalid parameter")),
        )
        .with_priority(1)
        .mount(&meta.server)
        .await;
    let refused = app
        .gql(create, json!({"input": {"senderId": sender_id, "name": "refused_one", "language": "en_US", "category": "UTILITY", "components": {"body": "Hi"}}}))
        .await;
    assert_eq!(error_code(&refused), Some("PROVIDER_ERROR"), "{refused}");
    let all = app
        .ok("{ templates { edges { node { name } } } }", json!({}))
        .await;
    assert_eq!(all["templates"]["edges"].as_array().unwrap().len(), 1);
}

async fn template_sync_follows_pages(app: TestApp) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    let list = format!("/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates");
    Mock::given(method("GET")).and(path(list.as_str())).and(query_param("after", "CURSOR-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"name": "third", "language": "pt_BR", "status": "PAUSED", "category": "MARKETING", "id": "3",
                      "components": [{"type": "BODY", "text": "Olá {{nome}}", "example": {"body_text_named_params": [{"param_name": "nome", "example": "Ana"}]}}]}],
            "paging": {"cursors": {"before": "x", "after": "CURSOR-3"}}})))
        .with_priority(1)
        .mount(&meta.server).await;
    Mock::given(method("GET")).and(path(list.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [meta_template("first", "One {{1}}", "UTILITY"),
                     {"name": "second", "language": "en_US", "status": "REJECTED", "rejected_reason": "PROMOTIONAL", "category": "MARKETING", "id": "2",
                      "components": [{"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Two"},
                                     {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Shop", "url": "https://example.com"}]}]}],
            "paging": {"cursors": {"before": "x", "after": "CURSOR-2"}, "next": "https://graph.facebook.com/elsewhere?after=CURSOR-2"}})))
        .with_priority(2)
        .mount(&meta.server).await;
    assert_eq!(
        sync(&app, &sender_id).await,
        json!({"created": 3, "updated": 0})
    );
    assert_eq!(
        sync(&app, &sender_id).await,
        json!({"created": 0, "updated": 3})
    );
    let data = app
        .ok("{ templates { edges { node { name language status statusReason category variableCount parameterFormat components { header { format } buttons { type url } } } } } }", json!({}))
        .await;
    let nodes: Vec<&Value> = data["templates"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(nodes[1]["status"], "REJECTED");
    assert_eq!(nodes[1]["statusReason"], "PROMOTIONAL");
    assert_eq!(nodes[1]["components"]["header"]["format"], "IMAGE");
    assert_eq!(
        nodes[1]["components"]["buttons"][0],
        json!({"type": "URL", "url": "https://example.com"})
    );
    assert_eq!(nodes[2]["parameterFormat"], "NAMED");
    assert_eq!(nodes[2]["status"], "PAUSED");
    for request in meta.requests("GET", "/message_templates").await {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {ACCESS_TOKEN}").as_str()
        );
    }
    let sandbox = app.sandbox_sender("+14155550100").await;
    let refused = app
        .gql(
            "mutation($id: ID!) { syncTemplates(senderId: $id) { created } }",
            json!({"id": sandbox}),
        )
        .await;
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"));
}

waflow_tests::on_both_databases!(
    sends_reach_meta_exactly_as_documented,
    meta_errors_map_to_waflow_codes,
    an_unreachable_api_fails_the_message_not_the_server,
    a_send_without_an_answer_is_never_sent_again,
    an_accepted_send_without_an_id_is_unconfirmed,
    sender_status_comes_from_meta,
    templates_are_submitted_to_meta_and_reviewed_by_webhook,
    template_sync_follows_pages,
);
