//! Outgoing webhooks: endpoints, signed deliveries, retries and redelivery, against a local
//! receiver.

use serde_json::{Value, json};
use waflow_tests::{TestApp, error_code, error_fields, eventually, sign};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

const CREATE: &str = "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { id url events enabled secret } }";
const DELIVERIES: &str = "query($e: ID) { webhookDeliveries(endpointId: $e) { edges { node { id event status attempts responseStatus lastError payload } } } }";

async fn endpoint(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let data = app
        .ok(
            CREATE,
            json!({"input": {"url": url, "events": events, "description": "CRM"}}),
        )
        .await;
    let e = &data["createWebhookEndpoint"];
    (
        e["id"].as_str().unwrap().to_owned(),
        e["secret"].as_str().unwrap().to_owned(),
    )
}

async fn deliveries(app: &TestApp, endpoint_id: &str) -> Vec<Value> {
    let data = app.ok(DELIVERIES, json!({"e": endpoint_id})).await;
    data["webhookDeliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn endpoints_are_managed_and_secrets_shown_once(app: TestApp) {
    let (id, secret) = endpoint(
        &app,
        "https://crm.example.com/hooks",
        json!(["CONVERSATION_ENDED"]),
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    let listed = app
        .ok(
            "{ webhookEndpoints { edges { node { id url events enabled secret } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["webhookEndpoints"]["edges"][0]["node"],
        json!({"id": id, "url": "https://crm.example.com/hooks", "events": ["CONVERSATION_ENDED"], "enabled": true, "secret": null})
    );
    let updated = app
        .ok("mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {enabled: false, events: [MESSAGE_RECEIVED]}) { enabled events } }", json!({"id": id}))
        .await;
    assert_eq!(
        updated["updateWebhookEndpoint"],
        json!({"enabled": false, "events": ["MESSAGE_RECEIVED"]})
    );
    let bad = app
        .gql(CREATE, json!({"input": {"url": "ftp://x", "events": []}}))
        .await;
    assert_eq!(error_fields(&bad), ["url", "events"]);
    let other = app.other_workspace().await;
    let foreign = app
        .gql_as(
            Some(&other),
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&foreign), Some("NOT_FOUND"));
    assert_eq!(
        app.ok(
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
            json!({"id": id})
        )
        .await["deleteWebhookEndpoint"],
        id.as_str()
    );
}

/// The receiver answers 500 once: the delivery is retried with the same id and the same signed
/// body, and succeeds. conversation.ended carries the snake_case fields integrators parse.
async fn deliveries_are_signed_and_retried(app: TestApp) {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("busy"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let (endpoint_id, secret) = endpoint(
        &app,
        &format!("{}/hooks", receiver.uri()),
        json!(["CONVERSATION_ENDED"]),
    )
    .await;
    let sender_id = app.sandbox_sender("+14155550100").await;
    let inbound = app
        .customer_writes(&sender_id, "+14155550123", "Where is my order?")
        .await;
    app.ok(
        "mutation($id: ID!) { endConversation(id: $id) { id } }",
        json!({"id": inbound["conversation"]["id"]}),
    )
    .await;

    let delivery = eventually("the delivery to succeed", || async {
        let list = deliveries(&app, &endpoint_id).await;
        list.into_iter().find(|d| d["status"] == "SUCCEEDED")
    })
    .await;
    assert_eq!(delivery["event"], "conversation.ended");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["responseStatus"], 200);
    assert_eq!(
        deliveries(&app, &endpoint_id).await.len(),
        1,
        "message.received is not subscribed"
    );

    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].body, requests[1].body,
        "a retry sends the same body"
    );
    for request in &requests {
        assert_eq!(request.headers["x-waflow-event"], "conversation.ended");
        assert_eq!(
            request.headers["x-waflow-delivery"],
            delivery["id"].as_str().unwrap()
        );
        assert_eq!(
            request.headers["x-waflow-signature"],
            sign(&request.body, &secret).as_str()
        );
    }
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body["event"], "conversation.ended");
    assert_eq!(body["conversation_id"], inbound["conversation"]["id"]);
    assert_eq!(body["status"], "ended");
    assert_eq!(body["message_count"], 1);
    assert_eq!(body["customer_phone"], "+14155550123");
    assert_eq!(body["customer_name"], "Ana");
    assert_eq!(body["formatted_transcript"], "Customer: Where is my order?");
    assert_eq!(body["transcript"][0]["role"], "user");
    assert_eq!(body["transcript"][0]["content"], "Where is my order?");
    assert!(body["transcript"][0]["timestamp_unix"].is_i64());
    assert_eq!(body["sender"]["phone_number"], "+14155550100");
    assert_eq!(body["extracted_variables"], json!({}));
}

/// A receiver that keeps failing: six attempts, then FAILED with what it answered;
/// redeliverWebhook sends it once more.
async fn failing_deliveries_stop_and_can_be_redelivered(app: TestApp) {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(6)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let (endpoint_id, _) = endpoint(&app, &receiver.uri(), json!(["MESSAGE_RECEIVED"])).await;
    let sender_id = app.sandbox_sender("+14155550100").await;
    app.customer_writes(&sender_id, "+14155550123", "hello")
        .await;

    let failed = eventually("the delivery to fail for good", || async {
        deliveries(&app, &endpoint_id)
            .await
            .into_iter()
            .find(|d| d["status"] == "FAILED")
    })
    .await;
    assert_eq!(failed["attempts"], 6);
    assert_eq!(failed["responseStatus"], 500);
    assert_eq!(failed["lastError"], "HTTP 500: boom");
    assert_eq!(failed["payload"]["event"], "message.received");
    assert_eq!(failed["payload"]["message"], "hello");

    // A receiver that is not there: the error says where and what (issue 18), not
    // "error sending request".
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let (gone_id, _) = endpoint(&app, &gone, json!(["MESSAGE_RECEIVED"])).await;
    app.customer_writes(&sender_id, "+14155550123", "anyone?")
        .await;
    let unreachable = eventually("a delivery to the missing receiver to fail", || async {
        deliveries(&app, &gone_id)
            .await
            .into_iter()
            .find(|d| d["lastError"].is_string())
    })
    .await;
    assert_eq!(unreachable["lastError"], "127.0.0.1: connection refused");

    let again = app
        .ok(
            "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { status } }",
            json!({"id": failed["id"]}),
        )
        .await;
    assert_eq!(again["redeliverWebhook"]["status"], "PENDING");
    // The "anyone?" message is delivered to this endpoint too: the redelivery is the delivery
    // that failed, and "hello" reached the receiver six times failing and once more.
    let done = eventually("the redelivery", || async {
        deliveries(&app, &endpoint_id)
            .await
            .into_iter()
            .find(|d| d["id"] == failed["id"] && d["status"] == "SUCCEEDED")
    })
    .await;
    assert_eq!(done["responseStatus"], 204);
    let hellos = receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["message"] == "hello")
        .count();
    assert_eq!(hellos, 7);
}

waflow_tests::on_both_databases!(
    endpoints_are_managed_and_secrets_shown_once,
    deliveries_are_signed_and_retried,
    failing_deliveries_stop_and_can_be_redelivered,
);
