//! `/webhooks/whatsapp` as Meta calls it: the handshake, signatures, de-duplication, every kind of
//! inbound message, delivery statuses, opt-out and quality updates.

use sea_orm::{EntityTrait, PaginatorTrait, sea_query::Expr};
use serde_json::{Value, json};
use waflow_entities::{message, sender};
use waflow_tests::{
    APP_SECRET, Meta, TestApp, VERIFY_TOKEN, error_code, eventually, messages_webhook,
};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

const PN: &str = "PN-200";

fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

fn text_from(from: &str, id: &str, body: &str) -> Value {
    messages_webhook(
        PN,
        json!({
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": from}],
        "messages": [{"from": from, "id": id, "timestamp": now(), "type": "text", "text": {"body": body}}]}),
    )
}

async fn stored(app: &TestApp) -> u64 {
    message::Entity::find()
        .count(&app.services.db)
        .await
        .unwrap()
}

async fn the_subscription_handshake_needs_a_verify_token(app: TestApp) {
    let meta = Meta::start().await;
    app.cloud_sender(&meta, "+14155550199", PN).await;
    let get = |mode: &str, token: &str| {
        let url = app.url(&format!(
            "/webhooks/whatsapp?hub.mode={mode}&hub.verify_token={token}&hub.challenge=1158201444"
        ));
        let http = app.http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        get("subscribe", VERIFY_TOKEN).await,
        (200, "1158201444".to_owned())
    );
    let (status, refused) = get("subscribe", "wrong").await;
    assert_eq!(status, 403);
    let refused: Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    assert_eq!(get("unsubscribe", VERIFY_TOKEN).await.0, 403);
}

/// Nothing is stored unless the body is signed with the app secret of a connected sender.
async fn unsigned_or_missigned_deliveries_store_nothing(app: TestApp) {
    let meta = Meta::start().await;
    app.cloud_sender(&meta, "+14155550199", PN).await;
    let body = text_from("16505551234", "wamid.A", "hello");
    assert_eq!(app.webhook(&body, None).await, 401);
    assert_eq!(app.webhook(&body, Some("another-apps-secret")).await, 401);
    let tampered = app
        .http
        .post(app.url("/webhooks/whatsapp"))
        .header("x-hub-signature-256", waflow_tests::sign(b"{}", APP_SECRET))
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401, "a signature of another body");
    let refused: Value = tampered.json().await.unwrap();
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"), "{refused}");
    assert_eq!(stored(&app).await, 0);

    let garbage = b"{not json";
    let malformed = app
        .http
        .post(app.url("/webhooks/whatsapp"))
        .header(
            "x-hub-signature-256",
            waflow_tests::sign(garbage, APP_SECRET),
        )
        .body(&garbage[..])
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let refused: Value = malformed.json().await.unwrap();
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"), "{refused}");

    let mut elsewhere = body.clone();
    elsewhere["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!("PN-UNKNOWN");
    assert_eq!(
        app.webhook(&elsewhere, Some(APP_SECRET)).await,
        200,
        "acknowledged, so Meta stops retrying"
    );
    assert_eq!(stored(&app).await, 0);
}

/// Meta retries: the same message delivered twice (or concurrently) is stored once.
async fn inbound_messages_are_stored_once(app: TestApp) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber
        .subscribe(
            "1",
            "subscription { messageReceived { customerPhone customerName message senderId } }",
        )
        .await;
    let body = text_from(
        "16505551234",
        "wamid.ONCE",
        "Does it come in another color?",
    );
    let deliveries = (0..5).map(|_| app.webhook(&body, Some(APP_SECRET)));
    for status in futures::future::join_all(deliveries).await {
        assert_eq!(status, 200);
    }
    assert_eq!(stored(&app).await, 1);
    let event = subscriber
        .next_event(std::time::Duration::from_secs(10))
        .await
        .expect("messageReceived from the webhook");
    assert_eq!(
        event["messageReceived"],
        json!({"customerPhone": "+16505551234", "customerName": "Sheena Nelson",
        "message": "Does it come in another color?", "senderId": sender_id})
    );
    assert!(
        subscriber
            .next_event(std::time::Duration::from_millis(700))
            .await
            .is_none(),
        "one event for five deliveries"
    );
    let data = app
        .ok("{ contacts { edges { node { phone name } } } }", json!({}))
        .await;
    assert_eq!(
        data["contacts"]["edges"],
        json!([{"node": {"phone": "+16505551234", "name": "Sheena Nelson"}}])
    );
    let session = app
        .ok("query($s: ID!) { sessionStatus(senderId: $s, recipientPhone: \"+16505551234\") { isOpen } }", json!({"s": sender_id}))
        .await;
    assert_eq!(
        session["sessionStatus"]["isOpen"], true,
        "the message opened the 24-hour window"
    );
}

async fn every_message_kind_keeps_what_it_carries(app: TestApp) {
    let meta = Meta::start().await;
    app.cloud_sender(&meta, "+14155550199", PN).await;
    let from = "16505551234";
    let m = |id: &str, kind: &str, detail: Value| {
        let mut m = json!({"from": from, "id": id, "timestamp": now(), "type": kind});
        m[kind] = detail;
        m
    };
    let body = messages_webhook(
        PN,
        json!({"messages": [
            m("wamid.1", "image", json!({"caption": "Taj Mahal", "mime_type": "image/jpeg", "id": "1003383421387256"})),
            m("wamid.2", "location", json!({"latitude": 37.44, "longitude": -122.16, "name": "Philz Coffee"})),
            m("wamid.3", "button", json!({"payload": "Unsubscribe", "text": "Unsubscribe"})),
            m("wamid.4", "interactive", json!({"type": "list_reply", "list_reply": {"id": "express", "title": "Priority Mail Express"}})),
            m("wamid.5", "audio", json!({"mime_type": "audio/ogg", "id": "42"})),
            m("wamid.6", "unsupported", Value::Null),
        ]}),
    );
    assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 200);
    let data = app
        .ok("{ contacts { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(data["contacts"]["edges"].as_array().unwrap().len(), 1);
    let messages: Vec<message::Model> =
        message::Entity::find().all(&app.services.db).await.unwrap();
    let by_id = |id: &str| {
        messages
            .iter()
            .find(|m| m.provider_message_id.as_deref() == Some(id))
            .unwrap()
            .clone()
    };
    let image = by_id("wamid.1");
    assert_eq!(
        (format!("{:?}", image.kind), image.body.as_deref()),
        ("Image".into(), Some("Taj Mahal"))
    );
    assert_eq!(image.payload.unwrap()["image"]["id"], "1003383421387256");
    assert_eq!(
        by_id("wamid.2").body.as_deref(),
        Some("Location: Philz Coffee, (37.44, -122.16)")
    );
    assert_eq!(
        by_id("wamid.2").payload.unwrap()["location"]["latitude"],
        37.44
    );
    assert_eq!(
        by_id("wamid.3").payload.unwrap()["button"]["payload"],
        "Unsubscribe"
    );
    assert_eq!(
        by_id("wamid.4").body.as_deref(),
        Some("Priority Mail Express")
    );
    assert_eq!(format!("{:?}", by_id("wamid.5").kind), "Audio");
    assert_eq!(format!("{:?}", by_id("wamid.6").kind), "Unsupported");
}

/// Statuses move a sent message forward only; failures keep Meta's code; strangers are ignored.
async fn statuses_move_messages_forward_only(app: TestApp) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    Mock::given(method("GET"))
        .and(path("/v21.0/WABA-1/message_templates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"name": "receipt", "language": "en", "status": "APPROVED",
            "category": "UTILITY", "id": "1", "components": [{"type": "BODY", "text": "Receipt"}]}]})))
        .mount(&meta.server)
        .await;
    app.ok(
        "mutation($id: ID!) { syncTemplates(senderId: $id) { created } }",
        json!({"id": sender_id}),
    )
    .await;
    let ids = ["wamid.S1", "wamid.S2"];
    for (i, id) in ids.iter().enumerate() {
        Mock::given(method("POST"))
            .and(path(format!("/v21.0/{PN}/messages")))
            .and(wiremock::matchers::body_partial_json(
                json!({"to": format!("1415555000{i}")}),
            ))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": id}]})),
            )
            .mount(&meta.server)
            .await;
    }
    let mut messages = Vec::new();
    for i in 0..2 {
        let data = app
            .ok("mutation($input: SendTemplateMessageInput!) { sendTemplateMessage(input: $input) { id status } }",
                json!({"input": {"senderId": sender_id, "templateName": "receipt", "language": "en", "to": format!("+1415555000{i}")}}))
            .await;
        messages.push(
            data["sendTemplateMessage"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let status = |id: &str, status: &str| json!({"id": id, "status": status, "timestamp": now(), "recipient_id": "14155550000"});
    let deliver = |statuses: Vec<Value>| messages_webhook(PN, json!({"statuses": statuses}));

    assert_eq!(
        app.webhook(
            &deliver(vec![status("wamid.S1", "sent"), status("wamid.S1", "read")]),
            Some(APP_SECRET)
        )
        .await,
        200
    );
    assert_eq!(app.message_status(&messages[0]).await, "READ");
    assert_eq!(
        app.webhook(
            &deliver(vec![status("wamid.S1", "delivered")]),
            Some(APP_SECRET)
        )
        .await,
        200
    );
    assert_eq!(
        app.message_status(&messages[0]).await,
        "READ",
        "a late delivered changes nothing"
    );

    let mut failed = status("wamid.S2", "failed");
    failed["errors"] = json!([{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
        "error_data": {"details": "More than 24 hours have passed since the customer last replied."}}]);
    assert_eq!(
        app.webhook(
            &deliver(vec![status("wamid.S2", "sent"), failed]),
            Some(APP_SECRET)
        )
        .await,
        200
    );
    let data = app
        .ok(
            "query($id: ID!) { message(id: $id) { status errorCode errorMessage } }",
            json!({"id": messages[1]}),
        )
        .await;
    assert_eq!(data["message"]["status"], "FAILED");
    assert_eq!(data["message"]["errorCode"], "131047");
    assert!(
        data["message"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("24 hours")
    );

    assert_eq!(
        app.webhook(
            &deliver(vec![status("wamid.UNKNOWN", "read")]),
            Some(APP_SECRET)
        )
        .await,
        200
    );
}

async fn opt_out_keywords_arrive_by_webhook(app: TestApp) {
    let meta = Meta::start().await;
    app.cloud_sender(&meta, "+14155550199", PN).await;
    let opted = "{ contacts { edges { node { optedOut } } } }";
    // Only a keyword as the whole message counts; START and UNSTOP opt back in.
    for (id, text, opted_out) in [
        ("wamid.O1", "  Stop  ", true),
        ("wamid.O2", "please stop calling me", true),
        ("wamid.O3", "unstop", false),
    ] {
        assert_eq!(
            app.webhook(&text_from("16505551234", id, text), Some(APP_SECRET))
                .await,
            200
        );
        assert_eq!(
            app.ok(opted, json!({})).await["contacts"]["edges"][0]["node"]["optedOut"],
            opted_out,
            "after {text:?}"
        );
    }
}

/// A redelivery that comes after later messages changes nothing: not the opt-out it carries,
/// not the conversation's count, not the events. It is found stored only once its
/// transaction has written the contact and the conversation, and all of that is undone.
async fn a_late_redelivery_changes_nothing(app: TestApp) {
    let meta = Meta::start().await;
    app.cloud_sender(&meta, "+14155550199", PN).await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber
        .subscribe("1", "subscription { messageReceived { message } }")
        .await;
    let stop = text_from("16505551234", "wamid.LATE-STOP", "STOP");
    let start = text_from("16505551234", "wamid.LATE-START", "START");
    for body in [&stop, &start, &stop] {
        assert_eq!(app.webhook(body, Some(APP_SECRET)).await, 200);
    }
    assert_eq!(stored(&app).await, 2);
    let data = app
        .ok(
            "{ contacts { edges { node { optedOut } } } conversations { edges { node { messageCount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["contacts"]["edges"][0]["node"]["optedOut"], false);
    assert_eq!(
        data["conversations"]["edges"],
        json!([{"node": {"messageCount": 2}}])
    );
    for text in ["STOP", "START"] {
        let event = subscriber
            .next_event(std::time::Duration::from_secs(10))
            .await
            .expect("messageReceived");
        assert_eq!(event["messageReceived"]["message"], text);
    }
    assert!(
        subscriber
            .next_event(std::time::Duration::from_millis(500))
            .await
            .is_none(),
        "the redelivery announces nothing"
    );
}

/// A FLAGGED number turns RED at once, which stops marketing; the rating is then re-read.
async fn quality_updates_pause_marketing(app: TestApp) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    // From now on Meta reports the number RED.
    Mock::given(method("GET"))
        .and(path(format!("/v21.0/{PN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"quality_rating": "RED", "status": "CONNECTED", "messaging_limit_tier": "TIER_250"})))
        .with_priority(1)
        .mount(&meta.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v21.0/WABA-1/message_templates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"name": "promo", "language": "en", "status": "APPROVED",
            "category": "MARKETING", "id": "9", "components": [{"type": "BODY", "text": "Sale!"}]}]})))
        .mount(&meta.server)
        .await;
    app.ok(
        "mutation($id: ID!) { syncTemplates(senderId: $id) { created } }",
        json!({"id": sender_id}),
    )
    .await;
    let update = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA-1", "time": 1748454394, "changes": [{
        "field": "phone_number_quality_update",
        "value": {"display_phone_number": "14155550199", "event": "FLAGGED", "current_limit": "TIER_250"}}]}]});
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber
        .subscribe(
            "q",
            "subscription { senderQualityChanged { sender { id phoneNumber } previous current } }",
        )
        .await;
    assert_eq!(app.webhook(&update, Some(APP_SECRET)).await, 200);
    // The new sender's first status refresh (UNKNOWN -> GREEN) is published after the commit
    // that made it ONLINE, so it can still be on its way when the test subscribes: it is the
    // one event allowed before the FLAGGED one.
    let first_refresh = json!({"sender": {"id": sender_id, "phoneNumber": "+14155550199"},
        "previous": "UNKNOWN", "current": "GREEN"});
    let mut event = subscriber
        .next_event(std::time::Duration::from_secs(10))
        .await
        .expect("senderQualityChanged");
    if event["senderQualityChanged"] == first_refresh {
        event = subscriber
            .next_event(std::time::Duration::from_secs(10))
            .await
            .expect("senderQualityChanged after the first refresh");
    }
    assert_eq!(
        event["senderQualityChanged"],
        json!({"sender": {"id": sender_id, "phoneNumber": "+14155550199"},
        "previous": "GREEN", "current": "RED"})
    );
    let quality = "query($id: ID!) { sender(id: $id) { qualityRating messagingLimitTier } }";
    assert_eq!(
        app.ok(quality, json!({"id": sender_id})).await["sender"]["qualityRating"],
        "RED"
    );
    eventually("the refresh after the quality update", || async {
        let data = app.ok(quality, json!({"id": sender_id})).await;
        (data["sender"]["messagingLimitTier"] == "TIER_250").then_some(())
    })
    .await;
    let send = app
        .gql("mutation($input: SendTemplateMessageInput!) { sendTemplateMessage(input: $input) { id } }",
            json!({"input": {"senderId": sender_id, "templateName": "promo", "language": "en", "to": "+14155550123"}}))
        .await;
    assert_eq!(error_code(&send), Some("SENDER_QUALITY_LOW"));
}

/// The delivery `text_from` makes, to the phone number id `pn`.
fn text_to(pn: &str, id: &str, body: &str) -> Value {
    let mut delivery = text_from("16505551234", id, body);
    delivery["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!(pn);
    delivery
}

async fn set_app_secret(app: &TestApp, sender: &str, secret: &str) {
    app.ok(
        "mutation($id: ID!, $input: UpdateSenderInput!) { updateSender(id: $id, input: $input) { id } }",
        json!({"id": sender, "input": {"cloudApi": {"appSecret": secret}}}),
    )
    .await;
}

/// Each process keeps the senders' app secrets between deliveries (issue 20). A change to a
/// sender, wherever it is made (here also by SQL, as another process or an operator would),
/// counts from the next delivery on: a number added to an app is that app's, a rotated secret
/// verifies at once and the old one no more, a revoked secret verifies nothing.
async fn a_changed_app_secret_counts_from_the_next_delivery(app: TestApp) {
    let meta = Meta::start().await;
    let first = app.cloud_sender(&meta, "+14155550199", PN).await;
    assert_eq!(
        app.webhook(&text_to(PN, "wamid.K1", "one"), Some(APP_SECRET))
            .await,
        200
    );
    assert_eq!(stored(&app).await, 1);

    let second = app.cloud_sender(&meta, "+14155550198", "PN-201").await;
    let to_second = text_to("PN-201", "wamid.K2", "two");
    assert_eq!(app.webhook(&to_second, Some(APP_SECRET)).await, 200);
    assert_eq!(
        stored(&app).await,
        2,
        "the new number's message, not a dead letter"
    );

    for sender in [&first, &second] {
        set_app_secret(&app, sender, "rotated-secret").await;
    }
    let old = text_to(PN, "wamid.K3", "three");
    assert_eq!(
        app.webhook(&old, Some(APP_SECRET)).await,
        401,
        "the old secret"
    );
    assert_eq!(
        app.webhook(&old, Some("rotated-secret")).await,
        200,
        "the new one"
    );
    assert_eq!(stored(&app).await, 3);

    // Revoked by SQL, as another process or an operator would: nothing verifies, whatever the
    // delivery would change. Each case starts from a copy that still holds the secret.
    let sealed = sender::Entity::find()
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap()
        .app_secret_enc;
    let set_sealed = |value: Option<String>| {
        let db = app.services.db.clone();
        async move {
            sender::Entity::update_many()
                .col_expr(sender::Column::AppSecretEnc, Expr::value(value))
                .exec(&db)
                .await
                .unwrap();
        }
    };
    let status = messages_webhook(
        PN,
        json!({"statuses": [{"id": "wamid.K3", "status": "read", "timestamp": now(),
                             "recipient_id": "16505551234"}]}),
    );
    let mut nothing = messages_webhook(PN, json!({}));
    nothing["entry"][0]["changes"][0]["field"] = json!("account_update");
    let message = text_to(PN, "wamid.K9", "revoked");
    let cases = [
        ("a status", status),
        ("nothing to change", nothing),
        ("a message", message),
    ];
    for (i, (what, delivery)) in cases.into_iter().enumerate() {
        set_sealed(sealed.clone()).await;
        let warm = text_to(PN, &format!("wamid.W{i}"), "still here");
        assert_eq!(
            app.webhook(&warm, Some("rotated-secret")).await,
            200,
            "{what}"
        );
        set_sealed(None).await;
        assert_eq!(
            app.webhook(&delivery, Some("rotated-secret")).await,
            401,
            "{what}"
        );
    }
    assert_eq!(stored(&app).await, 6, "three more, none revoked");
}

/// Every write to a sender makes each process read the senders again (their app secrets are
/// kept in memory by a version the write moves): a status check that finds nothing new, like
/// the periodic one, writes nothing.
async fn a_status_check_that_finds_nothing_new_writes_nothing(app: TestApp) {
    let meta = Meta::start().await;
    app.cloud_sender(&meta, "+14155550199", PN).await;
    let checks = || async { meta.requests("GET", &format!("/{PN}")).await.len() };
    let before = checks().await;
    let version = waflow_jobs::sender_directory::version(&app.services.db)
        .await
        .unwrap();
    let update = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA-1", "changes": [{
        "field": "phone_number_quality_update",
        "value": {"display_phone_number": "14155550199", "event": "UPGRADE", "current_limit": "TIER_1K"}}]}]});
    assert_eq!(app.webhook(&update, Some(APP_SECRET)).await, 200);
    eventually("the check at Meta", || async {
        (checks().await > before).then_some(())
    })
    .await;
    // Time for the write that must not come.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = waflow_jobs::sender_directory::version(&app.services.db)
        .await
        .unwrap();
    assert_eq!(after, version);
}

/// Without its database the webhook answers 503, so Meta delivers again later; nothing is lost.
async fn a_database_outage_asks_meta_to_retry(app: TestApp) {
    let meta = Meta::start().await;
    app.cloud_sender(&meta, "+14155550199", PN).await;
    let body = text_from("16505551234", "wamid.LATER", "hello");
    app.services.db.clone().close().await.unwrap();
    assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 503);
}

waflow_tests::on_both_databases!(
    the_subscription_handshake_needs_a_verify_token,
    unsigned_or_missigned_deliveries_store_nothing,
    inbound_messages_are_stored_once,
    every_message_kind_keeps_what_it_carries,
    statuses_move_messages_forward_only,
    opt_out_keywords_arrive_by_webhook,
    a_late_redelivery_changes_nothing,
    quality_updates_pause_marketing,
    a_changed_app_secret_counts_from_the_next_delivery,
    a_status_check_that_finds_nothing_new_writes_nothing,
    a_database_outage_asks_meta_to_retry,
);

/// A customer whose last message is older than 24 hours gets templates only; the error says when
/// the window closed.
async fn a_window_closes_24_hours_after_the_last_message(app: TestApp) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    let written = chrono::Utc::now() - chrono::Duration::hours(25);
    let mut old = text_from("16505551234", "wamid.OLD", "hello yesterday");
    old["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] =
        json!(written.timestamp().to_string());
    assert_eq!(app.webhook(&old, Some(APP_SECRET)).await, 200);
    let body = app
        .gql("mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
            json!({"input": {"senderId": sender_id, "to": "+16505551234", "text": "Sorry for the wait"}}))
        .await;
    assert_eq!(error_code(&body), Some("OUTSIDE_24H_WINDOW"));
    let closed_at = chrono::DateTime::parse_from_rfc3339(
        body["errors"][0]["extensions"]["windowClosedAt"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(closed_at.timestamp(), written.timestamp() + 24 * 3600);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("closed at")
    );
    let session = app
        .ok("query($s: ID!) { sessionStatus(senderId: $s, recipientPhone: \"+16505551234\") { isOpen requiresTemplate minutesRemaining lastCustomerMessageAt } }",
            json!({"s": sender_id}))
        .await;
    assert_eq!(session["sessionStatus"]["isOpen"], false);
    assert_eq!(session["sessionStatus"]["requiresTemplate"], true);
    assert_eq!(session["sessionStatus"]["minutesRemaining"], 0);
    assert!(
        meta.requests("POST", "/messages").await.is_empty(),
        "nothing left for Meta"
    );
}

/// Meta does not promise order: a message written earlier than one already stored does not
/// move the 24-hour window back; a later one moves it forward.
async fn a_late_message_never_moves_the_window_back(app: TestApp) {
    let meta = Meta::start().await;
    let sender_id = app.cloud_sender(&meta, "+14155550199", PN).await;
    let now = chrono::Utc::now();
    let last_written = || async {
        let session = app
            .ok("query($s: ID!) { sessionStatus(senderId: $s, recipientPhone: \"+16505551234\") { lastCustomerMessageAt } }",
                json!({"s": sender_id}))
            .await;
        let at = session["sessionStatus"]["lastCustomerMessageAt"]
            .as_str()
            .unwrap()
            .to_owned();
        chrono::DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .timestamp()
    };
    let mut expected = 0;
    for (id, hours_ago, moves) in [
        ("wamid.HOUR", 1.0, true),
        ("wamid.THREE-HOURS", 3.0, false),
        ("wamid.HALF-HOUR", 0.5, true),
    ] {
        let written = now - chrono::Duration::minutes((hours_ago * 60.0) as i64);
        let mut body = text_from("16505551234", id, "hello");
        body["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] =
            json!(written.timestamp().to_string());
        assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 200);
        if moves {
            expected = written.timestamp();
        }
        assert_eq!(last_written().await, expected, "after {id}");
    }
}

waflow_tests::on_both_databases!(
    a_window_closes_24_hours_after_the_last_message,
    a_late_message_never_moves_the_window_back,
);
