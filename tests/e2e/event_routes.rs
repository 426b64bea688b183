//! What routes a workspace's events (its enabled webhook endpoints, its flow trigger index) is
//! kept in memory by the workspace's `routes_version` (`jobs::event_routes`). Nothing in a
//! process clears that copy: only the version, moved by database triggers, does. So a change
//! made through this process's API, another process's or an operator's SQL reaches the next
//! event alike, and the tests below change the rows both ways.

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use waflow_tests::TestApp;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

use crate::flows::live_flow;

const CREATE_ENDPOINT: &str =
    "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { id } }";

/// The `message` of every delivery recorded for the endpoint.
async fn delivered_messages(app: &TestApp, endpoint_id: &str) -> Vec<Value> {
    let data = app
        .ok(
            "query($e: ID) { webhookDeliveries(endpointId: $e) { edges { node { payload } } } }",
            json!({"e": endpoint_id}),
        )
        .await;
    let mut messages: Vec<Value> = data["webhookDeliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["payload"]["message"].clone())
        .collect();
    messages.sort_by_key(|m| m.to_string());
    messages
}

async fn runs_of(app: &TestApp, flow_id: &str) -> usize {
    let data = app
        .ok(
            "query($f: ID!) { flowRuns(flowId: $f) { edges { node { id } } } }",
            json!({"f": flow_id}),
        )
        .await;
    data["flowRuns"]["edges"].as_array().unwrap().len()
}

async fn every_change_to_the_routes_reaches_the_next_event(app: TestApp) {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let sender = app.sandbox_sender("+14155550199").await;
    // Routed with nothing yet: the process now holds the workspace's empty routes.
    app.customer_writes(&sender, "+14155550101", "before").await;

    // Added through the API (inserts into both tables).
    let created = app
        .ok(
            CREATE_ENDPOINT,
            json!({"input": {"url": format!("{}/hooks", receiver.uri()), "events": ["MESSAGE_RECEIVED"]}}),
        )
        .await;
    let endpoint_id = created["createWebhookEndpoint"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let steps = json!([{"id": "note", "type": "set_variables", "values": {"seen": "yes"}}]);
    let (flow_id, _) = live_flow(
        &app,
        json!({"trigger": {"type": "message_received"}, "steps": steps}),
    )
    .await;
    app.customer_writes(&sender, "+14155550102", "after adding")
        .await;
    assert_eq!(
        delivered_messages(&app, &endpoint_id).await,
        [json!("after adding")],
        "the new endpoint hears the next message"
    );
    assert_eq!(runs_of(&app, &flow_id).await, 1, "the new flow runs for it");

    // Changed behind the API's back (an update of one table, a delete from the other).
    let db = &app.services.db;
    db.execute_unprepared("UPDATE webhook_endpoint SET enabled = false")
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM flow_trigger")
        .await
        .unwrap();
    app.customer_writes(&sender, "+14155550103", "after removing")
        .await;
    assert_eq!(
        delivered_messages(&app, &endpoint_id).await,
        [json!("after adding")],
        "a disabled endpoint hears nothing more"
    );
    assert_eq!(
        runs_of(&app, &flow_id).await,
        1,
        "a flow out of the trigger index starts nothing more"
    );

    // Put back through the API: re-enabled, and the flow's index row rewritten.
    app.ok(
        "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {enabled: true}) { enabled } }",
        json!({"id": endpoint_id}),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { setFlowEnabled(id: $id, enabled: false) { enabled } }",
        json!({"id": flow_id}),
    )
    .await;
    app.ok(
        "mutation($id: ID!) { setFlowEnabled(id: $id, enabled: true) { enabled } }",
        json!({"id": flow_id}),
    )
    .await;
    app.customer_writes(&sender, "+14155550104", "after restoring")
        .await;
    assert_eq!(
        delivered_messages(&app, &endpoint_id).await,
        [json!("after adding"), json!("after restoring")]
    );
    assert_eq!(runs_of(&app, &flow_id).await, 2);
}

waflow_tests::on_both_databases!(every_change_to_the_routes_reaches_the_next_event);
