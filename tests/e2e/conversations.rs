//! How conversations end (by hand, by inactivity) and what the ended payload carries.

use std::time::Duration;

use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;
use waflow_entities::conversation;
use waflow_tests::{TestApp, error_fields};

const CUSTOMER: &str = "+14155550123";
const WAIT: Duration = Duration::from_secs(15);

const ENDED: &str = "subscription { conversationEnded { conversationId type status endReason transcriptText \
    transcript { role direction content kind status } customer { phone name } sender { id phoneNumber displayName } \
    messageCount inputVariables extractedVariables createdAt endedAt } }";

async fn ending_by_hand_publishes_the_whole_conversation(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber.subscribe("1", ENDED).await;
    let inbound = app
        .customer_writes(&sender_id, CUSTOMER, "Is it in stock?")
        .await;
    app.ok(
        "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
        json!({"input": {"senderId": sender_id, "to": CUSTOMER, "text": "Yes, size M too."}}),
    )
    .await;
    let conversation_id = inbound["conversation"]["id"].clone();

    let ended = app
        .ok("mutation($id: ID!) { endConversation(id: $id) { id status endReason endedAt transcriptText } }", json!({"id": conversation_id}))
        .await;
    assert_eq!(ended["endConversation"]["status"], "ENDED");
    assert_eq!(ended["endConversation"]["endReason"], "MANUAL");
    assert_eq!(
        ended["endConversation"]["transcriptText"],
        "Customer: Is it in stock?\nAgent: Yes, size M too."
    );

    let event = subscriber
        .next_event(WAIT)
        .await
        .expect("conversationEnded")["conversationEnded"]
        .clone();
    assert_eq!(event["conversationId"], conversation_id);
    assert_eq!(event["type"], "WHATSAPP");
    assert_eq!(event["status"], "ENDED");
    assert_eq!(event["endReason"], "MANUAL");
    assert_eq!(event["messageCount"], 2);
    assert_eq!(event["customer"], json!({"phone": CUSTOMER, "name": "Ana"}));
    assert_eq!(
        event["sender"],
        json!({"id": sender_id, "phoneNumber": "+14155550100", "displayName": "Acme"})
    );
    assert_eq!(
        event["transcriptText"],
        "Customer: Is it in stock?\nAgent: Yes, size M too."
    );
    assert_eq!(
        event["transcript"][0],
        json!({"role": "CUSTOMER", "direction": "INBOUND", "content": "Is it in stock?", "kind": "TEXT", "status": "RECEIVED"})
    );
    assert_eq!(event["transcript"][1]["role"], "AGENT");
    assert_eq!(event["transcript"][1]["direction"], "OUTBOUND");
    assert_eq!(event["inputVariables"], json!({}));
    assert_eq!(event["extractedVariables"], json!({}));

    let again = app
        .gql(
            "mutation($id: ID!) { endConversation(id: $id) { id } }",
            json!({"id": conversation_id}),
        )
        .await;
    assert_eq!(error_fields(&again), ["id"]);
    let stored = app
        .ok("query($id: ID!) { conversation(id: $id) { status transcript { content } messages { edges { node { body } } } } }", json!({"id": conversation_id}))
        .await;
    assert_eq!(stored["conversation"]["status"], "ENDED");
    assert_eq!(
        stored["conversation"]["transcript"],
        json!([{"content": "Is it in stock?"}, {"content": "Yes, size M too."}])
    );

    let next = app
        .customer_writes(&sender_id, CUSTOMER, "One more thing")
        .await;
    assert_ne!(
        next["conversation"]["id"], conversation_id,
        "the next message starts a new conversation"
    );
    assert_eq!(next["conversation"]["messageCount"], 1);
}

/// Silence for the sender's timeout ends the conversation (a scheduled job, re-armed by every
/// message); endedAt is when the silence reached the timeout.
async fn silence_ends_a_conversation(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    app.ok(
        "mutation($id: ID!) { updateSender(id: $id, input: {inactivityTimeoutSeconds: 5}) { id } }",
        json!({"id": sender_id}),
    )
    .await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber.subscribe("1", ENDED).await;
    app.customer_writes(&sender_id, CUSTOMER, "hello").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last = app
        .customer_writes(&sender_id, CUSTOMER, "still there?")
        .await;
    let event = subscriber
        .next_event(WAIT)
        .await
        .expect("conversationEnded by inactivity")["conversationEnded"]
        .clone();
    assert_eq!(event["endReason"], "INACTIVITY");
    assert_eq!(event["conversationId"], last["conversation"]["id"]);
    assert_eq!(
        event["messageCount"], 2,
        "the second message re-armed the timeout"
    );
    let stored = app
        .ok(
            "query($id: ID!) { conversation(id: $id) { lastMessageAt endedAt } }",
            json!({"id": last["conversation"]["id"]}),
        )
        .await;
    let last_at = chrono::DateTime::parse_from_rfc3339(
        stored["conversation"]["lastMessageAt"].as_str().unwrap(),
    )
    .unwrap();
    let ended_at =
        chrono::DateTime::parse_from_rfc3339(stored["conversation"]["endedAt"].as_str().unwrap())
            .unwrap();
    assert_eq!((ended_at - last_at).num_seconds(), 5);
    assert!(
        subscriber
            .next_event(Duration::from_secs(2))
            .await
            .is_none(),
        "ended once"
    );
}

/// A message after the timeout starts a new conversation even when no job has ended the old
/// one yet (workers down): the old one is ended on the spot.
async fn a_stale_conversation_is_ended_by_the_next_message(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let first = app.customer_writes(&sender_id, CUSTOMER, "hello").await;
    let id: uuid::Uuid = first["conversation"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let row = conversation::Entity::find_by_id(id)
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap();
    let mut stale: conversation::ActiveModel = row.into();
    stale.last_message_at = Set(chrono::Utc::now() - chrono::Duration::hours(2));
    stale.update(&app.services.db).await.unwrap();

    let second = app
        .customer_writes(&sender_id, CUSTOMER, "back again")
        .await;
    assert_ne!(second["conversation"]["id"], first["conversation"]["id"]);
    let old = app
        .ok(
            "query($id: ID!) { conversation(id: $id) { status endReason transcriptText } }",
            json!({"id": first["conversation"]["id"]}),
        )
        .await;
    assert_eq!(
        old["conversation"],
        json!({"status": "ENDED", "endReason": "INACTIVITY", "transcriptText": "Customer: hello"})
    );
}

waflow_tests::on_both_databases!(
    ending_by_hand_publishes_the_whole_conversation,
    silence_ends_a_conversation,
    a_stale_conversation_is_ended_by_the_next_message,
);
