//! The customer with a WhatsApp username and no phone number: Meta names them by their
//! business-scoped user id (`from_user_id`, `contacts[].user_id`), and the message was dropped.

use serde_json::{Value, json};
use waflow_tests::TestApp;

use super::{Shop, contacts, messages};

const BSUID: &str = "US.13491208655302741918";

fn from_username(id: &str, text: &str) -> Value {
    json!({"contacts": [{"profile": {"name": "Ana", "username": "@ana.shop"}, "user_id": BSUID}],
           "messages": [{"from_user_id": BSUID, "id": id,
                         "timestamp": chrono::Utc::now().timestamp().to_string(),
                         "type": "text", "text": {"body": text}}]})
}

async fn a_username_customer_is_a_customer(app: TestApp) {
    let shop = Shop::open(&app).await;
    shop.deliver(&app, from_username("wamid.U-1", "hello"))
        .await;
    let found = contacts(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["phone"], Value::Null);
    assert_eq!(found[0]["userId"], BSUID);
    assert_eq!(found[0]["username"], "@ana.shop");
    assert_eq!(found[0]["name"], "Ana");
    let stored = messages(&app).await;
    assert_eq!(stored[0]["body"], "hello");
    let triggers = shop.wait_triggers(&app, 1).await;
    assert_eq!(triggers[0]["customer_user_id"], BSUID);
    assert_eq!(triggers[0]["customer_phone"], Value::Null);
    let received = shop.wait_deliveries("message.received", 1).await;
    assert_eq!(received[0]["customerUserId"], BSUID);
    assert_eq!(received[0]["customerUsername"], "@ana.shop");

    // The auto-reply and an operator's reply reach them by user id: `recipient`, not `to`.
    waflow_tests::eventually("the auto-reply", || async {
        (shop.sent().await.len() == 1).then_some(())
    })
    .await;
    let reply = app
        .gql(
            "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
            json!({"input": {"senderId": shop.sender, "to": BSUID, "text": "Hi Ana"}}),
        )
        .await;
    assert!(reply["errors"].is_null(), "{reply}");
    let sent = waflow_tests::eventually("two sends", || async {
        let sent = shop.sent().await;
        (sent.len() == 2).then_some(sent)
    })
    .await;
    for body in &sent {
        assert_eq!(body["recipient"], BSUID, "{body}");
        assert!(body.get("to").is_none(), "{body}");
    }
    assert_eq!(contacts(&app).await.len(), 1);

    // Later the customer shares their number: the same contact gains it.
    shop.deliver(
        &app,
        json!({"contacts": [{"profile": {"name": "Ana"}, "user_id": BSUID, "wa_id": "14155550123"}],
               "messages": [{"from": "14155550123", "from_user_id": BSUID, "id": "wamid.U-2",
                             "timestamp": chrono::Utc::now().timestamp().to_string(),
                             "type": "text", "text": {"body": "my number"}}]}),
    )
    .await;
    let found = contacts(&app).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["phone"], "+14155550123");
    assert_eq!(found[0]["userId"], BSUID);
}

waflow_tests::on_both_databases!(a_username_customer_is_a_customer);
