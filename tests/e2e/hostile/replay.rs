//! Signed webhooks replayed: a message older than Meta redelivers is recorded but runs nothing
//! (the 35-day-old message started flows), and an erased contact's message does not
//! bring the contact back (the replay after deleteContact recreated the conversation
//! and ran the flow again).

use serde_json::{Value, json};
use waflow_tests::{APP_SECRET, Meta, TestApp, messages_webhook};

use crate::flows::live_flow;

const PN: &str = "PN-REPLAY";
const CUSTOMER: &str = "14155550123";

fn inbound(id: &str, text: &str, days_ago: i64) -> Value {
    let at = chrono::Utc::now() - chrono::Duration::days(days_ago);
    messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": CUSTOMER}],
               "messages": [{"from": CUSTOMER, "id": id, "timestamp": at.timestamp().to_string(),
                             "type": "text", "text": {"body": text}}]}),
    )
}

async fn runs_of(app: &TestApp, flow: &str) -> usize {
    app.ok(
        "query($f: ID!) { flowRuns(flowId: $f, first: 50) { edges { node { id } } } }",
        json!({"f": flow}),
    )
    .await["flowRuns"]["edges"]
        .as_array()
        .unwrap()
        .len()
}

async fn contacts(app: &TestApp) -> Vec<Value> {
    app.ok(
        "{ contacts(first: 10) { edges { node { id phone optedOut } } } }",
        json!({}),
    )
    .await["contacts"]["edges"]
        .as_array()
        .unwrap()
        .clone()
}

async fn setup(app: &TestApp) -> String {
    let meta = Meta::start().await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    let (flow, _) = live_flow(
        app,
        json!({"trigger": {"type": "message_received", "senderId": sender},
            "steps": [{"id": "note", "type": "set_variables", "values": {"seen": "{{ trigger.message }}"}}]}),
    )
    .await;
    // Keep Meta's stand-in alive for the whole test.
    std::mem::forget(meta);
    flow
}

async fn stale_messages_are_recorded_and_run_nothing(app: TestApp) {
    let flow = setup(&app).await;
    assert_eq!(
        app.webhook(&inbound("wamid.OLD", "STOP", 35), Some(APP_SECRET))
            .await,
        200
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(runs_of(&app, &flow).await, 0, "a replay started a run");
    let found = contacts(&app).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["node"]["optedOut"], false, "an old STOP opted out");
    let messages = app
        .ok(
            "{ conversations(first: 5) { edges { node { messages(first: 5) { edges { node { body } } } } } } }",
            json!({}),
        )
        .await;
    assert!(
        messages.to_string().contains("STOP"),
        "the message is recorded: {messages}"
    );
    // A message of today still runs the flow.
    assert_eq!(
        app.webhook(&inbound("wamid.NEW", "hello", 0), Some(APP_SECRET))
            .await,
        200
    );
    waflow_tests::eventually("the new message's run", || async {
        (runs_of(&app, &flow).await == 1).then_some(())
    })
    .await;
}

async fn an_erased_contact_stays_erased(app: TestApp) {
    let flow = setup(&app).await;
    let body = inbound("wamid.ERASE-ME", "hello", 0);
    assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 200);
    waflow_tests::eventually("the first run", || async {
        (runs_of(&app, &flow).await == 1).then_some(())
    })
    .await;
    let contact = contacts(&app).await[0]["node"]["id"].clone();
    app.ok(
        "mutation($id: ID!) { deleteContact(id: $id) { messagesDeleted } }",
        json!({"id": contact}),
    )
    .await;
    assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 200);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        contacts(&app).await.is_empty(),
        "the replay brought the contact back"
    );
    assert_eq!(
        runs_of(&app, &flow).await,
        1,
        "the replay ran the flow again"
    );
}

waflow_tests::on_both_databases!(
    stale_messages_are_recorded_and_run_nothing,
    an_erased_contact_stays_erased
);
