//! Subscriptions over `/graphql/ws` (graphql-transport-ws): authentication in connection_init,
//! events as they happen, filtered to the caller's workspace and arguments.

use std::time::Duration;

use serde_json::json;
use waflow_tests::{Closed, TestApp};

const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for an event that must not come.
const QUIET: Duration = Duration::from_millis(700);

async fn connection_init_needs_a_valid_key(app: TestApp) {
    assert_eq!(
        app.subscriber("wf_wrong").await.err(),
        Some(Closed { code: 4403 })
    );
    assert_eq!(app.subscriber("").await.err(), Some(Closed { code: 4403 }));
    assert!(app.subscriber(&app.key).await.is_ok());
}

async fn inbound_messages_and_new_conversations_stream_to_their_workspace(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let other_sender = app.sandbox_sender("+14155550101").await;
    let mut all = app.subscriber(&app.key).await.unwrap();
    all.subscribe("1", "subscription { messageReceived { customerPhone customerName message messageId senderId conversationId timestamp } }").await;
    let mut started = app.subscriber(&app.key).await.unwrap();
    started.subscribe("1", &format!("subscription {{ conversationStarted(senderId: \"{sender_id}\") {{ customerPhone firstMessage conversationId sender {{ id phoneNumber displayName }} }} }}")).await;
    let other_workspace = app.other_workspace().await;
    let mut stranger = app.subscriber(&other_workspace).await.unwrap();
    stranger
        .subscribe("1", "subscription { messageReceived { message } }")
        .await;

    let inbound = app
        .customer_writes(&sender_id, "+14155550123", "Is it in stock?")
        .await;
    let event = all.next_event(WAIT).await.expect("messageReceived")["messageReceived"].clone();
    assert_eq!(event["customerPhone"], "+14155550123");
    assert_eq!(event["customerName"], "Ana");
    assert_eq!(event["message"], "Is it in stock?");
    assert_eq!(event["messageId"], inbound["id"]);
    assert_eq!(event["senderId"], sender_id.as_str());
    assert_eq!(event["conversationId"], inbound["conversation"]["id"]);
    let first =
        started.next_event(WAIT).await.expect("conversationStarted")["conversationStarted"].clone();
    assert_eq!(first["firstMessage"], "Is it in stock?");
    assert_eq!(first["conversationId"], inbound["conversation"]["id"]);
    assert_eq!(
        first["sender"],
        json!({"id": sender_id, "phoneNumber": "+14155550100", "displayName": "Acme"})
    );

    // The second message continues the conversation; another sender's is filtered out.
    app.customer_writes(&sender_id, "+14155550123", "Size M")
        .await;
    app.customer_writes(&other_sender, "+14155550123", "Hello other")
        .await;
    assert_eq!(
        all.next_event(WAIT).await.unwrap()["messageReceived"]["message"],
        "Size M"
    );
    assert_eq!(
        all.next_event(WAIT).await.unwrap()["messageReceived"]["message"],
        "Hello other"
    );
    assert!(
        started.next_event(QUIET).await.is_none(),
        "no new conversation on this sender"
    );
    assert!(
        stranger.next_event(QUIET).await.is_none(),
        "another workspace sees nothing"
    );
}

async fn delivery_statuses_stream_per_conversation(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let inbound = app.customer_writes(&sender_id, "+14155550123", "hi").await;
    let conversation_id = inbound["conversation"]["id"].as_str().unwrap().to_owned();
    let mut statuses = app.subscriber(&app.key).await.unwrap();
    statuses.subscribe("1", &format!("subscription {{ messageStatusUpdated(conversationId: \"{conversation_id}\") {{ messageId status conversationId }} }}")).await;
    let sent = app
        .ok(
            "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
            json!({"input": {"senderId": sender_id, "to": "+14155550123", "text": "hello"}}),
        )
        .await;
    let id = sent["sendTextMessage"]["id"].clone();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event =
            statuses.next_event(WAIT).await.expect("a status")["messageStatusUpdated"].clone();
        assert_eq!(event["messageId"], id);
        assert_eq!(event["conversationId"], conversation_id.as_str());
        seen.push(event["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["SENT", "DELIVERED"]);
}

/// A client that breaks the protocol is closed with 4400 (graphql-transport-ws's "invalid
/// message"); the server and everyone else's subscriptions carry on.
async fn malformed_messages_close_only_their_connection(app: TestApp) {
    let sender = app.sandbox_sender("+14155550188").await;
    let mut bystander = app.subscriber(&app.key).await.unwrap();
    bystander
        .subscribe("inbound", "subscription { messageReceived { message } }")
        .await;
    for garbage in [
        "not json {",
        r#"{"type": "subscribe"}"#,
        r#"{"type": "no_such_type", "id": "1"}"#,
        r#"{"id": 5, "type": "subscribe", "payload": []}"#,
    ] {
        let mut rude = app.subscriber(&app.key).await.unwrap();
        rude.send_raw(garbage).await;
        assert_eq!(
            rude.close_code(Duration::from_secs(5)).await,
            Some(4400),
            "{garbage}"
        );
    }
    app.customer_writes(&sender, "+14155550189", "still here?")
        .await;
    let event = bystander
        .next_event(Duration::from_secs(5))
        .await
        .expect("the other subscription still streams");
    assert_eq!(event["messageReceived"]["message"], "still here?");
}

waflow_tests::on_both_databases!(
    connection_init_needs_a_valid_key,
    inbound_messages_and_new_conversations_stream_to_their_workspace,
    delivery_statuses_stream_per_conversation,
    malformed_messages_close_only_their_connection,
);

/// Two server processes on one PostgreSQL and one Redis: a subscriber connected to one receives
/// what the other caused.
#[tokio::test]
async fn events_cross_between_server_processes() {
    use waflow_jobs::{RedisSettings, Services};
    let Some(first) = waflow_tests::spawn_app(waflow_tests::Backend::Postgres).await else {
        return;
    };
    // A second process: its own Services (connections, listener, limiter) on the same database
    // and Redis prefix, its own HTTP server.
    let prefix = first
        .redis_prefix()
        .expect("the PostgreSQL profile uses Redis")
        .to_owned();
    let settings = RedisSettings {
        url: "redis://127.0.0.1:6379".into(),
        prefix,
    };
    let second_services = Services::production(
        first.services.db.clone(),
        first.services.secrets.clone(),
        &settings,
    )
    .await
    .expect("second process");
    let second_addr = waflow_tests::spawn_server(second_services, &[]).await;

    let sender_id = first.sandbox_sender("+14155550100").await;
    let mut subscriber = first.subscriber(&first.key).await.unwrap();
    subscriber
        .subscribe("1", "subscription { messageReceived { message senderId } }")
        .await;

    // The customer's message reaches the second process.
    let body: serde_json::Value = first
        .http
        .post(format!("http://{second_addr}/graphql"))
        .bearer_auth(&first.key)
        .json(&json!({"query": "mutation($input: SimulateInboundMessageInput!) { simulateInboundMessage(input: $input) { id } }",
            "variables": {"input": {"senderId": sender_id, "from": "+14155550123", "text": "via the other process"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let event = subscriber
        .next_event(WAIT)
        .await
        .expect("an event from the other process");
    assert_eq!(
        event["messageReceived"],
        json!({"message": "via the other process", "senderId": sender_id})
    );
}

/// A mutation answers once what it committed is on disk, over the WebSocket as over HTTP (the
/// embedded profile syncs SQLite's WAL for it).
#[tokio::test]
async fn a_mutation_answers_once_it_is_on_disk() {
    let app = waflow_tests::spawn_app(waflow_tests::Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let waflow_jobs::db::Durability::AtWalSync(wal) = &app.services.durability else {
        panic!("a SQLite file is durable after a WAL sync");
    };
    let mut socket = app.subscriber(&app.key).await.unwrap();
    let before = wal.syncs();
    let mutation = "mutation { createContact(input: {phone: \"+14155550123\"}) { id } }";
    socket
        .send_raw(
            &json!({"id": "1", "type": "subscribe", "payload": {"query": mutation}}).to_string(),
        )
        .await;
    let answer = socket.next_message().await.expect("an answer");
    assert_eq!(answer["type"], "next", "{answer}");
    assert!(
        answer["payload"]["data"]["createContact"]["id"].is_string(),
        "{answer}"
    );
    assert!(wal.syncs() > before, "the answer came before a WAL sync");
    // Over HTTP the same wait is the GraphQL layer's too (the HTTP layer leaves /graphql to it).
    let before = wal.syncs();
    app.ok(
        "mutation { createContact(input: {phone: \"+14155550124\"}) { id } }",
        json!({}),
    )
    .await;
    assert!(
        wal.syncs() > before,
        "the HTTP answer came before a WAL sync"
    );
}
