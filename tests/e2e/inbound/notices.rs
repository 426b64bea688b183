//! The "customer changed number" notice: it was stored as the customer talking, started
//! a flow, got an AI reply sent to the old number, and left the contact on the old number.

use std::time::Duration;

use serde_json::json;
use waflow_tests::TestApp;

use super::{Shop, contacts, from_customer, messages};

const OLD: &str = "14155550123";
const NEW: &str = "14155550177";

fn changed_number(id: &str) -> serde_json::Value {
    // As Meta sends it: no `contacts` array, the old number in `from`, the new in `system`.
    json!({"messages": [{"from": OLD, "id": id, "timestamp": chrono::Utc::now().timestamp().to_string(),
        "type": "system",
        "system": {"body": "User Ana changed from 14155550123 to 14155550177",
                   "wa_id": NEW, "type": "user_changed_number"}}]})
}

async fn a_number_change_moves_the_contact_and_is_no_customer_message(app: TestApp) {
    let shop = Shop::open(&app).await;
    shop.deliver(
        &app,
        from_customer(
            OLD,
            json!({"id": "wamid.N-1", "type": "text", "text": {"body": "hi"}}),
        ),
    )
    .await;
    shop.wait_triggers(&app, 1).await;
    shop.wait_deliveries("message.received", 1).await;
    waflow_tests::eventually("the auto-reply", || async {
        (shop.sent().await.len() == 1).then_some(())
    })
    .await;
    let before = contacts(&app).await;
    app.ok(
        "mutation($id: ID!) { updateContact(id: $id, input: {attributes: {plan: \"gold\"}}) { id } }",
        json!({"id": before[0]["id"]}),
    )
    .await;

    shop.deliver(&app, changed_number("wamid.N-SYS")).await;
    let changed = shop.wait_deliveries("contact.identity_changed", 1).await;
    assert_eq!(changed[0]["previous_phone"], "+14155550123", "{changed:?}");
    assert_eq!(changed[0]["phone"], "+14155550177");
    assert_eq!(changed[0]["moved"], true);
    assert_eq!(changed[0]["contact_id"], before[0]["id"]);

    // The same contact, on the new number, with its attributes.
    let after = contacts(&app).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["phone"], "+14155550177");
    let attributes = app
        .ok(
            "query($id: ID!) { contact(id: $id) { attributes } }",
            json!({"id": after[0]["id"]}),
        )
        .await;
    assert_eq!(attributes["contact"]["attributes"]["plan"], "gold");

    // Stored as WhatsApp's notice, in the transcript, not as the customer.
    let stored = messages(&app).await;
    let notice = stored
        .iter()
        .find(|m| m["providerMessageId"] == "wamid.N-SYS")
        .expect("the notice is stored");
    assert_eq!(notice["role"], "SYSTEM");
    assert_eq!(notice["kind"], "SYSTEM");
    assert_eq!(notice["direction"], "INBOUND");
    assert!(notice["body"].as_str().unwrap().contains("changed from"));
    assert_eq!(notice["payload"]["system"]["type"], "user_changed_number");

    // No flow, no AI reply, no message.received for it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        shop.triggers(&app).await.len(),
        1,
        "the notice started a run"
    );
    assert_eq!(shop.sent().await.len(), 1, "the notice got an AI reply");
    assert_eq!(shop.deliveries("message.received").await.len(), 1);

    // The customer writes from the new number: the same contact, and a reply goes there.
    shop.deliver(
        &app,
        from_customer(
            NEW,
            json!({"id": "wamid.N-2", "type": "text", "text": {"body": "new phone"}}),
        ),
    )
    .await;
    shop.wait_triggers(&app, 2).await;
    assert_eq!(contacts(&app).await.len(), 1);
    let sent = waflow_tests::eventually("the second auto-reply", || async {
        let sent = shop.sent().await;
        (sent.len() == 2).then_some(sent)
    })
    .await;
    assert_eq!(sent[1]["to"], NEW);
}

/// A notice to a number another contact already has: both are kept, and the event says the
/// contact did not move. A redelivered notice changes nothing.
async fn a_number_change_onto_a_known_contact_keeps_both(app: TestApp) {
    let shop = Shop::open(&app).await;
    shop.deliver(
        &app,
        from_customer(
            OLD,
            json!({"id": "wamid.K-1", "type": "text", "text": {"body": "hi"}}),
        ),
    )
    .await;
    app.ok(
        "mutation { createContact(input: {phone: \"+14155550177\", name: \"Other\"}) { id } }",
        json!({}),
    )
    .await;
    shop.deliver(&app, changed_number("wamid.K-SYS")).await;
    shop.deliver(&app, changed_number("wamid.K-SYS")).await;
    let changed = shop.wait_deliveries("contact.identity_changed", 1).await;
    assert_eq!(changed[0]["moved"], false, "{changed:?}");
    let mut phones: Vec<String> = contacts(&app)
        .await
        .iter()
        .map(|c| c["phone"].as_str().unwrap().to_owned())
        .collect();
    phones.sort();
    assert_eq!(phones, ["+14155550123", "+14155550177"]);
    let notices = messages(&app)
        .await
        .into_iter()
        .filter(|m| m["kind"] == "SYSTEM")
        .count();
    assert_eq!(notices, 1, "a redelivery is stored once");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(shop.deliveries("contact.identity_changed").await.len(), 1);
}

/// A notice about a customer who never wrote to this sender opens no conversation: their first
/// message still starts one, and is announced.
async fn a_notice_first_leaves_the_first_message_its_start(app: TestApp) {
    let shop = Shop::open(&app).await;
    shop.deliver(&app, changed_number("wamid.F-SYS")).await;
    shop.wait_deliveries("contact.identity_changed", 1).await;
    shop.deliver(
        &app,
        from_customer(
            NEW,
            json!({"id": "wamid.F-1", "type": "text", "text": {"body": "hi"}}),
        ),
    )
    .await;
    let started = shop.wait_deliveries("conversation.started", 1).await;
    assert_eq!(started[0]["firstMessage"], "hi", "{started:?}");
    assert_eq!(contacts(&app).await.len(), 1);
}

/// A notice older than Meta redelivers is a replay: it must not move the contact back to a
/// number it left. It is kept as a dead letter, and nothing else happens.
async fn a_replayed_notice_moves_nothing(app: TestApp) {
    let shop = Shop::open(&app).await;
    shop.deliver(
        &app,
        from_customer(
            OLD,
            json!({"id": "wamid.R-1", "type": "text", "text": {"body": "hi"}}),
        ),
    )
    .await;
    let mut replay = changed_number("wamid.R-SYS");
    let old = chrono::Utc::now() - chrono::Duration::days(35);
    replay["messages"][0]["timestamp"] = json!(old.timestamp().to_string());
    shop.deliver(&app, replay).await;
    assert_eq!(contacts(&app).await[0]["phone"], "+14155550123");
    assert!(messages(&app).await.iter().all(|m| m["kind"] != "SYSTEM"));
    let letters = app
        .ok(
            "{ inboundDeadLetters { edges { node { reason raw } } } }",
            json!({}),
        )
        .await;
    let letters = letters["inboundDeadLetters"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0]["node"]["reason"]
            .as_str()
            .unwrap()
            .contains("older")
    );
    assert_eq!(letters[0]["node"]["raw"]["system"]["wa_id"], NEW);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(shop.deliveries("contact.identity_changed").await.is_empty());
}

waflow_tests::on_both_databases!(
    a_replayed_notice_moves_nothing,
    a_notice_first_leaves_the_first_message_its_start,
    a_number_change_moves_the_contact_and_is_no_customer_message,
    a_number_change_onto_a_known_contact_keeps_both
);
