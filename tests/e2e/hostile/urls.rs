//! The egress policy: a workspace cannot make the server call its own networks (the issue's
//! `/metrics` of every workspace, the cloud metadata service), in any spelling, when a URL is
//! saved, when a request is made, or by a redirect; and a stored secret is only sent to the
//! server it was entered for.

use std::net::SocketAddr;

use serde_json::{Value, json};
use waflow_tests::{
    ACCESS_TOKEN, Backend, Llm, Meta, TestApp, error_code, error_fields, spawn_app, spawn_app_with,
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

const TEST_DEFINITION: &str = "query($d: JSON!, $p: JSON!) { testFlowDefinition(definition: $d, payload: $p, allowHttp: true) { \
    status error steps { stepId status output error } } }";

/// Every spelling of an inside address the issue tried, and a few more.
const INSIDE: [&str; 12] = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://10.0.0.1/",
    "http://localhost/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.1:8080/metrics",
    "http://192.168.0.10/",
    "http://[fd12::1]/",
    "http://100.64.1.1/",
];

/// A server with the policy on: private networks refused.
async fn guarded() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| s.egress.allow_private_networks(false))
        .await
        .unwrap()
}

async fn refused_at(app: &TestApp, query: &str, input: Value) -> Vec<String> {
    let answer = app.gql(query, json!({"input": input})).await;
    assert_eq!(error_code(&answer), Some("VALIDATION_FAILED"), "{answer}");
    error_fields(&answer)
}

#[tokio::test]
async fn inside_addresses_are_refused_wherever_a_url_is_saved() {
    let app = guarded().await;
    for url in INSIDE {
        let webhook = refused_at(
            &app,
            "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { id } }",
            json!({"url": url, "events": ["MESSAGE_RECEIVED"]}),
        )
        .await;
        assert_eq!(webhook, ["url"], "webhook at {url}");
        let assistant = refused_at(
            &app,
            "mutation($input: CreateAssistantInput!) { createAssistant(input: $input) { id } }",
            json!({"name": "A", "provider": "OPENAI_COMPATIBLE", "baseUrl": url, "model": "m"}),
        )
        .await;
        assert_eq!(assistant, ["baseUrl"], "assistant at {url}");
        let sender = refused_at(
            &app,
            "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
            json!({"phoneNumber": "+14155550100", "displayName": "Acme", "provider": "CLOUD_API",
                "cloudApi": {"phoneNumberId": "PN-1", "businessAccountId": "WABA-1",
                    "accessToken": "t", "appSecret": "s", "verifyToken": "v", "apiBaseUrl": url}}),
        )
        .await;
        assert_eq!(sender, ["cloudApi.apiBaseUrl"], "sender at {url}");
        let flow = refused_at(
            &app,
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"name": "F", "definition": {"trigger": {"type": "manual"}, "steps": [
                {"id": "call", "type": "http_request", "url": url}]}}),
        )
        .await;
        assert_eq!(flow, ["steps[0].url"], "http_request to {url}");
    }
}

/// The attack: this server's own `/metrics`, reached by a rendered URL that passes
/// validation. The request is refused when it is made; no metric reaches the attacker.
#[tokio::test]
async fn requests_to_inside_addresses_are_refused_when_made() {
    let app = guarded().await;
    let port = app.addr.port();
    for url in [
        format!("{{{{ 'http://127.0.0.1:' ~ {port} ~ '/metrics' }}}}"),
        format!("{{{{ 'http://localhost:' ~ {port} ~ '/metrics' }}}}"),
        format!("{{{{ 'http://[::ffff:127.0.0.1]:' ~ {port} ~ '/metrics' }}}}"),
    ] {
        let definition = json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "steal", "type": "http_request", "url": url}]});
        let answer = app
            .ok(TEST_DEFINITION, json!({"d": definition, "p": {}}))
            .await;
        let trace = &answer["testFlowDefinition"];
        assert_eq!(trace["status"], "FAILED", "{answer}");
        let error = trace["steps"][0]["error"].as_str().unwrap();
        assert!(error.contains("WAFLOW_ALLOW_PRIVATE_NETWORKS"), "{error}");
        assert!(!answer.to_string().contains("waflow_"), "{answer}");
    }
}

/// A server the policy lets through answers with a redirect inside: it is not followed.
#[tokio::test]
async fn redirects_to_inside_addresses_are_not_followed() {
    let app = guarded().await;
    let inside = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("the secret"))
        .mount(&inside)
        .await;
    let outside = MockServer::start().await;
    let inside_port = inside.address().port();
    for (route, target) in [
        (
            "/by-address",
            format!("http://127.0.0.1:{inside_port}/secret"),
        ),
        ("/by-name", format!("http://localhost:{inside_port}/secret")),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(302).insert_header("location", target.as_str()))
            .mount(&outside)
            .await;
    }
    let outside_address: SocketAddr = *outside.address();
    app.services.egress.allow_address(outside_address);
    for route in ["/by-address", "/by-name"] {
        let url = format!("{}{route}", outside.uri());
        let definition = json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "follow", "type": "http_request", "url": url}]});
        let answer = app
            .ok(TEST_DEFINITION, json!({"d": definition, "p": {}}))
            .await;
        let error = answer["testFlowDefinition"]["steps"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains("WAFLOW_ALLOW_PRIVATE_NETWORKS"), "{answer}");
    }
    assert!(
        inside.received_requests().await.unwrap().is_empty(),
        "a redirect reached the inside"
    );
}

/// The leak: a new apiBaseUrl alone would have carried the stored access token there.
#[tokio::test]
async fn a_stored_access_token_stays_with_its_server() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let meta = Meta::start().await;
    let sender = app.cloud_sender(&meta, "+14155550199", "PN-HOME").await;
    let elsewhere = MockServer::start().await;
    let update = "mutation($id: ID!, $input: UpdateSenderInput!) { updateSender(id: $id, input: $input) { id } }";
    let moved = app
        .gql(
            update,
            json!({"id": sender, "input": {"cloudApi": {"apiBaseUrl": format!("{}/x", elsewhere.uri())}}}),
        )
        .await;
    assert_eq!(error_code(&moved), Some("VALIDATION_FAILED"), "{moved}");
    assert_eq!(error_fields(&moved), ["cloudApi.accessToken"]);
    // Another path on the same server keeps the token.
    let same = app
        .gql(
            update,
            json!({"id": sender, "input": {"cloudApi": {"apiBaseUrl": format!("{}/v22.0", meta.base_url().trim_end_matches("/v21.0"))}}}),
        )
        .await;
    assert!(same["errors"].is_null(), "{same}");
    // With the token given again, the move is the workspace's choice.
    let with_token = app
        .gql(
            update,
            json!({"id": sender, "input": {"cloudApi": {"apiBaseUrl": elsewhere.uri(), "accessToken": "EAAG-new-token"}}}),
        )
        .await;
    assert!(with_token["errors"].is_null(), "{with_token}");
    waflow_tests::eventually("the status check at the new server", || async {
        let requests = elsewhere.received_requests().await.unwrap_or_default();
        (!requests.is_empty()).then_some(())
    })
    .await;
    for request in elsewhere.received_requests().await.unwrap() {
        let authorization = request
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(authorization, "Bearer EAAG-new-token");
        assert!(!authorization.contains(ACCESS_TOKEN));
    }
}

#[tokio::test]
async fn a_stored_model_key_stays_with_its_server() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let llm = Llm::start().await;
    let assistant = app
        .assistant(
            json!({"name": "Bot", "provider": "OPENAI_COMPATIBLE", "baseUrl": llm.base_url(),
            "model": "m", "apiKey": "sk-stored"}),
        )
        .await;
    let update = "mutation($id: ID!, $input: UpdateAssistantInput!) { updateAssistant(id: $id, input: $input) { id } }";
    let moved = app
        .gql(
            update,
            json!({"id": assistant, "input": {"baseUrl": "https://models.example.net/v1"}}),
        )
        .await;
    assert_eq!(error_code(&moved), Some("VALIDATION_FAILED"), "{moved}");
    assert_eq!(error_fields(&moved), ["apiKey"]);
    let with_key = app
        .gql(
            update,
            json!({"id": assistant, "input": {"baseUrl": "https://models.example.net/v1", "apiKey": "sk-new"}}),
        )
        .await;
    assert!(with_key["errors"].is_null(), "{with_key}");
}
