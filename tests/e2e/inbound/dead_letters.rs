//! Nothing is dropped: every entry Meta's reference allows is kept as a message (the property
//! test), a number the numbering plan does not know is still a customer, and what truly cannot
//! be read is a dead letter with its raw JSON, counted in `/metrics`.

use serde_json::{Value, json};
use waflow_tests::{
    APP_SECRET, TestApp,
    inbound::{messages_value, samples},
    messages_webhook,
};

use super::{PN, Shop, contacts, messages};

async fn dead_letters(app: &TestApp) -> Vec<Value> {
    app.ok(
        "{ inboundDeadLetters(first: 20) { edges { node { id reason raw senderId createdAt } } } }",
        json!({}),
    )
    .await["inboundDeadLetters"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn unreadable_entries_are_dead_letters(app: TestApp) {
    let shop = Shop::open(&app).await;
    let before = metric(&app, "waflow_inbound_dead_letters_total").await;
    // No id; no customer at all; a `from` that is no number and no user id.
    shop.deliver(
        &app,
        json!({"messages": [
            {"from": "14155550123", "type": "text", "text": {"body": "no id"}},
            {"id": "wamid.NOBODY", "type": "text", "text": {"body": "from nobody"}},
            {"from": "not-a-number", "id": "wamid.GARBLED", "type": "text", "text": {"body": "?"}},
            {"from": "14155550123", "id": "wamid.FINE", "type": "text", "text": {"body": "fine"}}]}),
    )
    .await;
    let letters = dead_letters(&app).await;
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(letters.iter().any(|l| l["raw"]["text"]["body"] == "no id"));
    assert!(
        letters
            .iter()
            .all(|l| l["senderId"] == shop.sender.as_str())
    );
    assert!(
        letters
            .iter()
            .any(|l| l["reason"].as_str().unwrap().contains("no id"))
    );
    // The counter is the process's: other tests running beside this one may add to it.
    assert!(metric(&app, "waflow_inbound_dead_letters_total").await - before >= 3.0);
    // The readable one beside them is kept.
    assert_eq!(messages(&app).await[0]["body"], "fine");

    // A change for a number no sender has: 200 for Meta, counted, kept (for no workspace).
    let stray = messages_webhook(
        "PN-NOBODY-HAS",
        json!({"messages": [{"from": "14155550123", "id": "wamid.STRAY", "type": "text", "text": {"body": "hi"}}]}),
    );
    assert_eq!(app.webhook(&stray, Some(APP_SECRET)).await, 200);
    assert!(metric(&app, "waflow_inbound_dead_letters_total").await - before >= 4.0);
    assert_eq!(
        dead_letters(&app).await.len(),
        3,
        "another workspace's letter is not ours"
    );
}

/// A WhatsApp id in a range our numbering-plan data does not know (Meta's own test numbers
/// are such) is a customer, not a dead letter.
async fn an_unknown_range_is_still_a_customer(app: TestApp) {
    let shop = Shop::open(&app).await;
    shop.deliver(
        &app,
        super::from_customer(
            "15550783881",
            json!({"id": "wamid.RANGE", "type": "text", "text": {"body": "hi"}}),
        ),
    )
    .await;
    assert_eq!(contacts(&app).await[0]["phone"], "+15550783881");
    assert!(dead_letters(&app).await.is_empty());
    shop.wait_triggers(&app, 1).await;
    // They can be answered: by the auto-reply, and by an operator writing the number.
    waflow_tests::eventually("the auto-reply", || async {
        (shop.sent().await.len() == 1).then_some(())
    })
    .await;
    let reply = app
        .gql(
            "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
            json!({"input": {"senderId": shop.sender, "to": "+15550783881", "text": "hello"}}),
        )
        .await;
    assert!(reply["errors"].is_null(), "{reply}");
    let sent = shop.sent().await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|s| s["to"] == "15550783881"), "{sent:?}");
    // A number nobody vouched for is still refused.
    let unknown = app
        .gql(
            "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
            json!({"input": {"senderId": shop.sender, "to": "+15550783882", "text": "hello"}}),
        )
        .await;
    assert_eq!(
        waflow_tests::error_code(&unknown),
        Some("INVALID_PHONE_NUMBER")
    );
}

/// Any `messages` entry Meta's reference allows is kept: a stored message (of the customer, or
/// WhatsApp's notice) or a dead letter, never nothing.
async fn every_allowed_entry_is_kept(app: TestApp) {
    let shop = Shop::open(&app).await;
    let cases = samples(messages_value(), 60);
    for (i, mut value) in cases.into_iter().enumerate() {
        let id = format!("wamid.PROP-{i}");
        value["messages"][0]["id"] = json!(id);
        let body = messages_webhook(PN, value.clone());
        assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 200, "{value}");
        let kept = messages(&app)
            .await
            .iter()
            .any(|m| m["providerMessageId"] == id.as_str())
            || dead_letters(&app)
                .await
                .iter()
                .any(|l| l["raw"]["id"] == id.as_str());
        assert!(kept, "nothing kept of {value}");
    }
    let _ = shop;
}

waflow_tests::on_both_databases!(
    unreadable_entries_are_dead_letters,
    an_unknown_range_is_still_a_customer,
    every_allowed_entry_is_kept
);
