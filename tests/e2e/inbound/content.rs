//! Every message type keeps its content: a readable body, the structured payload, and both in
//! the flow trigger and the outgoing webhook. The cases: a click-to-WhatsApp referral
//! was thrown away, and a catalog order was a blank message.

use serde_json::{Value, json};
use waflow_tests::TestApp;

use super::{Shop, from_customer, messages};

const CUSTOMER: &str = "14155550123";

fn referral() -> Value {
    json!({"source_url": "https://fb.me/3cr4Wqqkp", "source_id": "120226305854810726",
           "source_type": "ad", "headline": "Summer tees", "body": "Two for one this week",
           "media_type": "image", "image_url": "https://scontent.example/ad.jpg",
           "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMXP2"})
}

async fn ad_attribution_is_kept_everywhere(app: TestApp) {
    let shop = Shop::open(&app).await;
    let mut text =
        json!({"id": "wamid.AD-1", "type": "text", "text": {"body": "Is the offer still on?"}});
    text["referral"] = referral();
    shop.deliver(&app, from_customer(CUSTOMER, text)).await;
    let mut audio = json!({"id": "wamid.AD-2", "type": "audio",
        "audio": {"id": "1003383421387256", "mime_type": "audio/ogg; codecs=opus", "voice": true}});
    audio["referral"] = referral();
    shop.deliver(&app, from_customer(CUSTOMER, audio)).await;

    let stored: Vec<Value> = messages(&app)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "INBOUND")
        .collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    for id in ["wamid.AD-1", "wamid.AD-2"] {
        let m = stored
            .iter()
            .find(|m| m["providerMessageId"] == id)
            .unwrap();
        assert_eq!(
            m["payload"]["referral"]["ctwa_clid"],
            referral()["ctwa_clid"],
            "{m}"
        );
        assert_eq!(m["payload"]["referral"]["source_id"], "120226305854810726");
    }
    let audio = stored
        .iter()
        .find(|m| m["providerMessageId"] == "wamid.AD-2")
        .unwrap();
    assert_eq!(audio["kind"], "AUDIO");
    assert_eq!(audio["body"], "(voice message)");
    // The conversation is attributed to the ad.
    assert_eq!(stored[0]["conversationId"], audio["conversationId"]);
    let conversation = app
        .ok(
            "query($id: ID!) { conversation(id: $id) { referral } }",
            json!({"id": audio["conversationId"]}),
        )
        .await;
    assert_eq!(
        conversation["conversation"]["referral"]["headline"],
        "Summer tees"
    );
    // The flow and the integrator see it.
    let triggers = shop.wait_triggers(&app, 2).await;
    assert_eq!(triggers[0]["referral"]["source_type"], "ad", "{triggers:?}");
    assert_eq!(triggers[1]["kind"], "AUDIO");
    let received = shop.wait_deliveries("message.received", 2).await;
    assert!(
        received
            .iter()
            .all(|d| d["referral"]["ctwa_clid"] == referral()["ctwa_clid"]),
        "{received:?}"
    );
    let started = shop.wait_deliveries("conversation.started", 1).await;
    assert_eq!(started[0]["referral"]["source_id"], "120226305854810726");
}

async fn a_catalog_order_keeps_its_items(app: TestApp) {
    let shop = Shop::open(&app).await;
    let order = json!({"id": "wamid.ORDER-1", "type": "order", "order": {
        "catalog_id": "1537241170358624", "text": "please gift-wrap",
        "product_items": [
            {"product_retailer_id": "SKU-TEE-M", "quantity": 2, "item_price": 12.5, "currency": "USD"},
            {"product_retailer_id": "SKU-CAP", "quantity": "1", "item_price": "9.99", "currency": "USD"}]}});
    shop.deliver(&app, from_customer(CUSTOMER, order)).await;
    let stored = messages(&app).await;
    let m = stored
        .iter()
        .find(|m| m["providerMessageId"] == "wamid.ORDER-1")
        .unwrap();
    assert_eq!(m["kind"], "ORDER");
    assert_eq!(
        m["body"],
        "Order: 2 × SKU-TEE-M at 12.5 USD, 1 × SKU-CAP at 9.99 USD. Note: please gift-wrap"
    );
    assert_eq!(
        m["payload"]["order"]["product_items"][0]["product_retailer_id"],
        "SKU-TEE-M"
    );
    let triggers = shop.wait_triggers(&app, 1).await;
    assert_eq!(triggers[0]["kind"], "ORDER");
    assert_eq!(
        triggers[0]["payload"]["order"]["product_items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(triggers[0]["payload"]["order"]["text"], "please gift-wrap");
    let received = shop.wait_deliveries("message.received", 1).await;
    assert_eq!(
        received[0]["payload"]["order"]["catalog_id"],
        "1537241170358624"
    );
}

/// Meta's types, one each: (the item without `from`, its kind, its body).
fn every_type() -> Vec<(Value, &'static str, &'static str)> {
    let media = |t: &str, extra: Value| {
        let mut object =
            json!({"id": "1037543291543636", "mime_type": "image/jpeg", "sha256": "a0d3"});
        for (k, v) in extra.as_object().unwrap() {
            object[k] = v.clone();
        }
        json!({"type": t, t: object})
    };
    vec![
        (
            json!({"type": "text", "text": {"body": "Does it come in blue?"}}),
            "TEXT",
            "Does it come in blue?",
        ),
        (
            media("image", json!({"caption": "this one"})),
            "IMAGE",
            "this one",
        ),
        (media("image", json!({})), "IMAGE", "(image)"),
        (media("video", json!({})), "VIDEO", "(video)"),
        (media("audio", json!({"voice": false})), "AUDIO", "(audio)"),
        (
            media("document", json!({"filename": "invoice.pdf"})),
            "DOCUMENT",
            "invoice.pdf",
        ),
        (
            media("sticker", json!({"animated": false})),
            "STICKER",
            "(sticker)",
        ),
        (
            json!({"type": "location", "location": {"latitude": 19.4326, "longitude": -99.1332,
                "name": "Shop", "address": "Av. Reforma 1"}}),
            "LOCATION",
            "Location: Shop, Av. Reforma 1, (19.4326, -99.1332)",
        ),
        (
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Bo Li", "first_name": "Bo"},
                "phones": [{"phone": "+1 415 555 0100", "wa_id": "14155550100", "type": "CELL"}]}]}),
            "CONTACTS",
            "Contact: Bo Li +1 415 555 0100",
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button_reply",
                "button_reply": {"id": "change", "title": "Change"}}}),
            "INTERACTIVE",
            "Change",
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list_reply",
                "list_reply": {"id": "m", "title": "Size M", "description": "Medium"}}}),
            "INTERACTIVE",
            "Size M",
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {
                "name": "flow", "body": "Sent", "response_json": "{\"flow_token\":\"t\",\"size\":\"M\"}"}}}),
            "INTERACTIVE",
            "Sent",
        ),
        (
            json!({"type": "button", "button": {"text": "Stop promotions", "payload": "stop-promos"}}),
            "INTERACTIVE",
            "Stop promotions",
        ),
        (
            json!({"type": "reaction", "reaction": {"message_id": "wamid.EARLIER", "emoji": "👍"}}),
            "REACTION",
            "Reacted 👍",
        ),
        (
            json!({"type": "edit", "edit": {"original_message_id": "wamid.EARLIER",
                "message": {"type": "text", "text": {"body": "blue, not red"}}}}),
            "EDIT",
            "(edited) blue, not red",
        ),
        (
            json!({"type": "revoke", "revoke": {"original_message_id": "wamid.EARLIER"}}),
            "REVOKE",
            "(deleted a message)",
        ),
        (
            json!({"type": "request_welcome"}),
            "WELCOME",
            "(opened the chat)",
        ),
        (
            json!({"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."}}]}),
            "UNSUPPORTED",
            "(unsupported message: Message type is currently not supported.)",
        ),
    ]
}

async fn every_type_keeps_its_content(app: TestApp) {
    let shop = Shop::open(&app).await;
    let cases = every_type();
    for (i, (item, _, _)) in cases.iter().enumerate() {
        let mut item = item.clone();
        item["id"] = json!(format!("wamid.TYPE-{i}"));
        shop.deliver(&app, from_customer(CUSTOMER, item)).await;
    }
    let stored = messages(&app).await;
    for (i, (item, kind, body)) in cases.iter().enumerate() {
        let id = format!("wamid.TYPE-{i}");
        let m = stored
            .iter()
            .find(|m| m["providerMessageId"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} was not kept"));
        assert_eq!(
            (m["kind"].as_str(), m["body"].as_str()),
            (Some(*kind), Some(*body)),
            "{item}"
        );
        let t = item["type"].as_str().unwrap();
        if t != "text" && !item[t].is_null() {
            assert_eq!(m["payload"]["type"], t, "{m}");
            assert!(!m["payload"][t].is_null(), "{m}");
        }
    }
    let flow = stored
        .iter()
        .find(|m| m["kind"] == "INTERACTIVE" && m["body"] == "Sent")
        .unwrap();
    assert_eq!(
        flow["payload"]["interactive"]["nfm_reply"]["response"]["size"],
        "M"
    );
    // Each reached the flows and the integrator with its kind and payload.
    let triggers = shop.wait_triggers(&app, cases.len()).await;
    let kinds: Vec<&str> = triggers
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    for (_, kind, _) in &cases {
        assert!(kinds.contains(kind), "no run for {kind}: {kinds:?}");
    }
    let received = shop.wait_deliveries("message.received", cases.len()).await;
    let order = received.iter().find(|d| d["kind"] == "LOCATION").unwrap();
    assert_eq!(order["payload"]["location"]["latitude"], 19.4326);
}

waflow_tests::on_both_databases!(
    ad_attribution_is_kept_everywhere,
    a_catalog_order_keeps_its_items,
    every_type_keeps_its_content
);
