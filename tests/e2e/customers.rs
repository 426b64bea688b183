//! One customer, whichever form WhatsApp or the business writes their number in: Mexico's
//! `521…` ids, Brazil's ids without the ninth digit, Argentina's numbers without the 9. The
//! message is kept, the contact is one, the window is theirs, and a reply goes to the id
//! WhatsApp knows them by.

use serde_json::{Value, json};
use waflow_tests::{APP_SECRET, Meta, TestApp, error_code, messages_webhook};

const PN: &str = "PN-CUSTOMERS";

async fn customer_writes(app: &TestApp, wa_id: &str, id: &str, text: &str) {
    let inbound = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Cliente"}, "wa_id": wa_id}],
               "messages": [{"from": wa_id, "id": id, "timestamp": chrono::Utc::now().timestamp().to_string(),
                             "type": "text", "text": {"body": text}}]}),
    );
    assert_eq!(app.webhook(&inbound, Some(APP_SECRET)).await, 200);
}

async fn contacts(app: &TestApp) -> Vec<Value> {
    app.ok(
        "{ contacts(first: 10) { edges { node { id phone } } } }",
        json!({}),
    )
    .await["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn reply(app: &TestApp, sender: &str, to: &str, text: &str) -> Value {
    app.gql(
        "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id conversation { id } } }",
        json!({"input": {"senderId": sender, "to": to, "text": text}}),
    )
    .await
}

/// The `to` of every text Meta was asked to send.
async fn sent_to(meta: &Meta) -> Vec<String> {
    meta.requests("POST", &format!("/{PN}/messages"))
        .await
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["to"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn inbound_count(app: &TestApp) -> usize {
    let data = app
        .ok(
            "{ conversations(first: 10) { edges { node { messages(first: 50) { edges { node { direction } } } } } } }",
            json!({}),
        )
        .await;
    data.to_string().matches("INBOUND").count()
}

/// The Mexican customer: their messages were dropped, and neither form of their
/// number could be written to.
async fn a_mexican_customer_is_one_customer(app: TestApp) {
    let meta = Meta::start().await;
    meta.accepts_messages(PN).await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    customer_writes(&app, "5215555550123", "wamid.MX-1", "hola").await;
    assert_eq!(inbound_count(&app).await, 1, "the message is kept");
    let found = contacts(&app).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["phone"], "+525555550123");
    // Both forms reach the same customer, inside their window, at the id WhatsApp gave.
    for to in ["+525555550123", "+5215555550123"] {
        let sent = reply(&app, &sender, to, "¡hola!").await;
        assert!(sent["errors"].is_null(), "to {to}: {sent}");
    }
    assert_eq!(sent_to(&meta).await, ["5215555550123", "5215555550123"]);
    assert_eq!(contacts(&app).await.len(), 1);
}

/// The Brazilian customer: stored with the ninth digit, writing with an id without it.
async fn a_brazilian_customer_is_one_customer(app: TestApp) {
    let meta = Meta::start().await;
    meta.accepts_messages(PN).await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    app.ok(
        "mutation { createContact(input: {phone: \"+5531955550123\", name: \"Bia\"}) { id } }",
        json!({}),
    )
    .await;
    customer_writes(&app, "553155550123", "wamid.BR-1", "oi").await;
    let found = contacts(&app).await;
    assert_eq!(found.len(), 1, "one customer: {found:?}");
    assert_eq!(found[0]["phone"], "+5531955550123");
    let sent = reply(&app, &sender, "+5531955550123", "Olá, Bia").await;
    assert!(sent["errors"].is_null(), "{sent}");
    assert_eq!(sent_to(&meta).await, ["553155550123"]);
    // The other form is the same customer for createContact too.
    let again = app
        .gql(
            "mutation { createContact(input: {phone: \"+553155550123\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&again), Some("VALIDATION_FAILED"), "{again}");
}

/// An Argentine number stored without the 9 (as many businesses have it), and the customer
/// writing with the id that has it.
async fn an_argentine_customer_is_one_customer(app: TestApp) {
    let meta = Meta::start().await;
    meta.accepts_messages(PN).await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    let created = app
        .gql(
            "mutation { createContact(input: {phone: \"+541158749895\"}) { id phone } }",
            json!({}),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    customer_writes(&app, "5491158749895", "wamid.AR-1", "hola").await;
    assert_eq!(contacts(&app).await.len(), 1);
    let sent = reply(&app, &sender, "+541158749895", "¡hola!").await;
    assert!(sent["errors"].is_null(), "{sent}");
    assert_eq!(sent_to(&meta).await, ["5491158749895"]);
}

waflow_tests::on_both_databases!(
    a_mexican_customer_is_one_customer,
    a_brazilian_customer_is_one_customer,
    an_argentine_customer_is_one_customer
);
