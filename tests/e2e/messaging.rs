//! Sending through the sandbox provider: every rule, its error code, and what is (not) stored.

use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use serde_json::{Value, json};
use waflow_entities::{enums::QualityRating, message, sender};
use waflow_tests::{Backend, TestApp, error_code, error_fields, eventually, spawn_app_logging};

const SEND_TEXT: &str = "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { \
    id direction role kind body status providerMessageId errorCode createdAt \
    conversation { id status messageCount customerPhone customerName } } }";

const SEND_TEMPLATE: &str = "mutation($input: SendTemplateMessageInput!) { sendTemplateMessage(input: $input) { \
    id kind body status providerMessageId templateVariables template { name } conversation { id } } }";

const CUSTOMER: &str = "+14155550123";

fn text(sender_id: &str, to: &str, text: &str) -> Value {
    json!({"input": {"senderId": sender_id, "to": to, "text": text}})
}

async fn message_count(app: &TestApp) -> u64 {
    message::Entity::find()
        .count(&app.services.db)
        .await
        .unwrap()
}

/// The window opens with the customer's message; a reply is stored, given a provider id, and
/// moves QUEUED → SENT → DELIVERED by itself.
async fn free_form_text_within_the_window(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let closed = app
        .gql(SEND_TEXT, text(&sender_id, CUSTOMER, "Hello"))
        .await;
    assert_eq!(error_code(&closed), Some("OUTSIDE_24H_WINDOW"), "{closed}");
    assert!(
        closed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("never written")
    );
    let session = "query($s: ID!, $p: String!) { sessionStatus(senderId: $s, recipientPhone: $p) { \
                   isOpen canSendFreeform requiresTemplate lastCustomerMessageAt expiresAt minutesRemaining } }";
    let before = app
        .ok(session, json!({"s": sender_id, "p": CUSTOMER}))
        .await;
    assert_eq!(before["sessionStatus"]["isOpen"], false);
    assert_eq!(before["sessionStatus"]["requiresTemplate"], true);

    let inbound = app
        .customer_writes(&sender_id, CUSTOMER, "Do you ship to Lisbon?")
        .await;
    assert_eq!(inbound["direction"], "INBOUND");
    assert_eq!(inbound["status"], "RECEIVED");
    let after = app
        .ok(session, json!({"s": sender_id, "p": CUSTOMER}))
        .await;
    assert_eq!(after["sessionStatus"]["isOpen"], true);
    assert_eq!(after["sessionStatus"]["canSendFreeform"], true);
    assert!(after["sessionStatus"]["minutesRemaining"].as_i64().unwrap() >= 24 * 60 - 1);

    let data = app
        .ok(SEND_TEXT, text(&sender_id, CUSTOMER, "Yes, in 3 days."))
        .await;
    let sent = &data["sendTextMessage"];
    assert_eq!(sent["direction"], "OUTBOUND");
    assert_eq!(sent["kind"], "TEXT");
    assert_eq!(sent["body"], "Yes, in 3 days.");
    assert_eq!(sent["status"], "QUEUED");
    assert!(
        sent["providerMessageId"]
            .as_str()
            .unwrap()
            .starts_with("wamid.")
    );
    assert_eq!(
        sent["conversation"]["id"], inbound["conversation"]["id"],
        "same conversation"
    );
    assert_eq!(sent["conversation"]["messageCount"], 2);
    assert_eq!(sent["conversation"]["customerName"], "Ana");

    let id = sent["id"].as_str().unwrap();
    eventually("the sandbox to deliver the message", || async {
        (app.message_status(id).await == "DELIVERED").then_some(())
    })
    .await;
}

async fn text_checks_name_the_problem(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    app.customer_writes(&sender_id, CUSTOMER, "hi").await;
    let stored_before = message_count(&app).await;

    let too_long = app
        .gql(SEND_TEXT, text(&sender_id, CUSTOMER, &"a".repeat(4097)))
        .await;
    assert_eq!(error_code(&too_long), Some("MESSAGE_TOO_LONG"));
    assert!(
        app.gql(SEND_TEXT, text(&sender_id, CUSTOMER, &"é".repeat(4096)))
            .await
            .get("errors")
            .is_none(),
        "4096 characters are fine"
    );
    let empty = app.gql(SEND_TEXT, text(&sender_id, CUSTOMER, "  ")).await;
    assert_eq!(error_fields(&empty), ["text"]);
    for bad in ["(415) 555-0123", "07123456789"] {
        let body = app.gql(SEND_TEXT, text(&sender_id, bad, "hi")).await;
        assert_eq!(error_code(&body), Some("INVALID_PHONE_NUMBER"), "{bad}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "to");
    }
    let unknown = app
        .gql(
            SEND_TEXT,
            text("01a20dce-95e5-7470-87e7-0f8de39e638c", CUSTOMER, "hi"),
        )
        .await;
    assert_eq!(error_code(&unknown), Some("SENDER_NOT_FOUND"));
    let other = app.other_workspace().await;
    let foreign = app
        .gql_as(Some(&other), SEND_TEXT, text(&sender_id, CUSTOMER, "hi"))
        .await;
    assert_eq!(error_code(&foreign), Some("SENDER_NOT_FOUND"));

    app.ok(
        "mutation($id: ID!) { updateSender(id: $id, input: {status: OFFLINE}) { id } }",
        json!({"id": sender_id}),
    )
    .await;
    let offline = app.gql(SEND_TEXT, text(&sender_id, CUSTOMER, "hi")).await;
    assert_eq!(error_code(&offline), Some("SENDER_OFFLINE"));
    assert_eq!(
        message_count(&app).await,
        stored_before + 1,
        "only the 4096-character message was stored"
    );
}

async fn templates_are_checked_and_rendered(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    app.approved_template(
        &sender_id,
        "appointment",
        "UTILITY",
        "Hi {{1}}, {{2}} will see you at {{3}}.",
    )
    .await;
    let send = |variables: Value| {
        json!({"input": {"senderId": sender_id, "templateName": "appointment", "language": "en",
                         "to": CUSTOMER, "recipientName": "Ana Silva", "variables": variables}})
    };
    let data = app
        .ok(SEND_TEMPLATE, send(json!(["Ana", "Dr. Lee", "10:30"])))
        .await;
    let sent = &data["sendTemplateMessage"];
    assert_eq!(sent["kind"], "TEMPLATE");
    assert_eq!(
        sent["body"], "Hi Ana, Dr. Lee will see you at 10:30.",
        "stored rendered"
    );
    assert_eq!(
        sent["templateVariables"],
        json!({"1": "Ana", "2": "Dr. Lee", "3": "10:30"})
    );
    assert_eq!(sent["template"]["name"], "appointment");
    let contact = app
        .ok("{ contacts { edges { node { phone name } } } }", json!({}))
        .await;
    assert_eq!(
        contact["contacts"]["edges"][0]["node"],
        json!({"phone": CUSTOMER, "name": "Ana Silva"})
    );

    let mismatch = app.gql(SEND_TEMPLATE, send(json!(["Ana"]))).await;
    assert_eq!(
        error_code(&mismatch),
        Some("TEMPLATE_VARIABLES_MISMATCH"),
        "{mismatch}"
    );
    let empty_value = app
        .gql(SEND_TEMPLATE, send(json!(["Ana", " ", "10:30"])))
        .await;
    assert_eq!(error_fields(&empty_value), ["variables[1]"]);

    let mut missing = send(json!(["Ana", "Dr. Lee", "10:30"]));
    missing["input"]["templateName"] = json!("no_such_template");
    assert_eq!(
        error_code(&app.gql(SEND_TEMPLATE, missing).await),
        Some("TEMPLATE_NOT_FOUND")
    );
    let mut other_language = send(json!(["Ana", "Dr. Lee", "10:30"]));
    other_language["input"]["language"] = json!("pt_BR");
    assert_eq!(
        error_code(&app.gql(SEND_TEMPLATE, other_language).await),
        Some("TEMPLATE_NOT_FOUND")
    );

    let pending = app
        .ok(
            "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
            json!({"input": {"senderId": sender_id, "name": "pending_one", "language": "en", "category": "UTILITY",
                   "components": {"body": "Hi"}}}),
        )
        .await;
    let by_id = json!({"input": {"senderId": sender_id, "templateId": pending["createTemplate"]["id"], "to": CUSTOMER}});
    assert_eq!(
        error_code(&app.gql(SEND_TEMPLATE, by_id).await),
        Some("TEMPLATE_NOT_APPROVED")
    );

    // A template of another sender is not this sender's template.
    let second = app.sandbox_sender("+14155550101").await;
    let foreign = app
        .approved_template(&second, "other", "UTILITY", "Hi")
        .await;
    let wrong_sender =
        json!({"input": {"senderId": sender_id, "templateId": foreign, "to": CUSTOMER}});
    assert_eq!(
        error_code(&app.gql(SEND_TEMPLATE, wrong_sender).await),
        Some("TEMPLATE_NOT_FOUND")
    );
    let neither = json!({"input": {"senderId": sender_id, "to": CUSTOMER}});
    assert_eq!(
        error_fields(&app.gql(SEND_TEMPLATE, neither).await),
        ["templateId"]
    );
}

async fn named_placeholders_take_named_values(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let id = app
        .approved_template(
            &sender_id,
            "named",
            "UTILITY",
            "Hi {{customer_name}}, see {{doctor}}.",
        )
        .await;
    let shape = app
        .ok(
            "query($id: ID!) { template(id: $id) { parameterFormat variableNames variableCount } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        shape["template"],
        json!({"parameterFormat": "NAMED", "variableNames": ["customer_name", "doctor"], "variableCount": 2})
    );
    let send = |named: Value, positional: Value| {
        json!({"input": {"senderId": sender_id, "templateId": id, "to": CUSTOMER,
                         "namedVariables": named, "variables": positional}})
    };
    let data = app
        .ok(
            SEND_TEMPLATE,
            send(
                json!({"doctor": "Dr. Lee", "customer_name": "Ana"}),
                json!([]),
            ),
        )
        .await;
    assert_eq!(data["sendTemplateMessage"]["body"], "Hi Ana, see Dr. Lee.");
    for (named, positional) in [
        (json!({"customer_name": "Ana"}), json!([])),
        (
            json!({"customer_name": "Ana", "doctor": "x", "extra": "y"}),
            json!([]),
        ),
        (json!(null), json!(["Ana", "Dr. Lee"])),
    ] {
        let body = app
            .gql(SEND_TEMPLATE, send(named.clone(), positional))
            .await;
        assert_eq!(
            error_code(&body),
            Some("TEMPLATE_VARIABLES_MISMATCH"),
            "{named}: {body}"
        );
    }
}

/// STOP opts the customer out of marketing (utility messages still go); START opts back in.
async fn opted_out_customers_get_no_marketing(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let promo = app
        .approved_template(&sender_id, "promo", "MARKETING", "20% off today")
        .await;
    let receipt = app
        .approved_template(&sender_id, "receipt", "UTILITY", "Your receipt")
        .await;
    let send = |template: &str| json!({"input": {"senderId": sender_id, "templateId": template, "to": CUSTOMER}});

    app.customer_writes(&sender_id, CUSTOMER, " stop ").await;
    let contact = app
        .ok(
            "{ contacts { edges { node { optedOut optedOutAt } } } }",
            json!({}),
        )
        .await;
    assert_eq!(contact["contacts"]["edges"][0]["node"]["optedOut"], true);
    let refused = app.gql(SEND_TEMPLATE, send(&promo)).await;
    assert_eq!(error_code(&refused), Some("RECIPIENT_OPTED_OUT"));
    assert!(
        app.gql(SEND_TEMPLATE, send(&receipt))
            .await
            .get("errors")
            .is_none()
    );

    app.customer_writes(&sender_id, CUSTOMER, "START").await;
    assert!(
        app.gql(SEND_TEMPLATE, send(&promo))
            .await
            .get("errors")
            .is_none()
    );
}

/// A RED sender stops marketing until the user overrides it.
async fn low_quality_senders_pause_marketing(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let promo = app
        .approved_template(&sender_id, "promo", "MARKETING", "20% off")
        .await;
    let receipt = app
        .approved_template(&sender_id, "receipt", "UTILITY", "Receipt")
        .await;
    let row = sender::Entity::find_by_id(sender_id.parse::<uuid::Uuid>().unwrap())
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap();
    let mut red: sender::ActiveModel = row.into();
    red.quality_rating = Set(QualityRating::Red);
    red.update(&app.services.db).await.unwrap();

    let send = |template: &str| json!({"input": {"senderId": sender_id, "templateId": template, "to": CUSTOMER}});
    assert_eq!(
        error_code(&app.gql(SEND_TEMPLATE, send(&promo)).await),
        Some("SENDER_QUALITY_LOW")
    );
    assert!(
        app.gql(SEND_TEMPLATE, send(&receipt))
            .await
            .get("errors")
            .is_none()
    );
    app.ok(
        "mutation($id: ID!) { updateSender(id: $id, input: {allowMarketingOnLowQuality: true}) { allowMarketingOnLowQuality } }",
        json!({"id": sender_id}),
    )
    .await;
    assert!(
        app.gql(SEND_TEMPLATE, send(&promo))
            .await
            .get("errors")
            .is_none()
    );
}

/// Over the sender's rate the send is refused with when to retry, and nothing is stored.
async fn rate_limit_refuses_instead_of_sending(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    app.ok(
        "mutation($id: ID!) { updateSender(id: $id, input: {messagesPerSecond: 1}) { id } }",
        json!({"id": sender_id}),
    )
    .await;
    let template = app
        .approved_template(&sender_id, "receipt", "UTILITY", "Receipt")
        .await;
    let send = json!({"input": {"senderId": sender_id, "templateId": template, "to": CUSTOMER}});
    assert!(
        app.gql(SEND_TEMPLATE, send.clone())
            .await
            .get("errors")
            .is_none()
    );
    let stored = message_count(&app).await;
    let limited = app.gql(SEND_TEMPLATE, send).await;
    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    assert_eq!(limited["errors"][0]["extensions"]["retryAfterSeconds"], 1);
    assert_eq!(message_count(&app).await, stored);
}

async fn idempotency_keys_send_once(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550100").await;
    let template = app
        .approved_template(&sender_id, "receipt", "UTILITY", "Receipt {{1}}")
        .await;
    let send = json!({"input": {"senderId": sender_id, "templateId": template, "to": CUSTOMER,
                                "variables": ["A-1"], "idempotencyKey": "order-A-1"}});
    let first = app.ok(SEND_TEMPLATE, send.clone()).await;
    let second = app.ok(SEND_TEMPLATE, send).await;
    assert_eq!(
        first["sendTemplateMessage"]["id"],
        second["sendTemplateMessage"]["id"]
    );
    assert_eq!(message_count(&app).await, 1);
}

/// The lookups of a send's idempotency key: the statements that filter on it.
const KEY_LOOKUP: &[&str] = &["\"message\".\"idempotency_key\" ="];

/// A send looks its idempotency key up once, before its checks: the insert's unique index
/// catches a concurrent send with the same key, and only then is the key looked up again.
async fn a_send_looks_up_its_idempotency_key_once(backend: Backend) {
    let Some((app, statements)) = spawn_app_logging(backend, KEY_LOOKUP).await else {
        return;
    };
    let sender_id = app.sandbox_sender("+14155550100").await;
    let template = app
        .approved_template(&sender_id, "receipt", "UTILITY", "Receipt {{1}}")
        .await;
    let send = |key: &str| {
        json!({"input": {"senderId": sender_id, "templateId": template, "to": CUSTOMER,
                         "variables": ["A-1"], "idempotencyKey": key}})
    };
    statements.count(true);
    app.ok(SEND_TEMPLATE, send("order-A-1")).await;
    let seen = statements.take();
    assert_eq!(seen.len(), 1, "{seen:#?}");

    // Sends racing with one key: one wins the insert, the others find its message. They raced
    // in every run tried, on both databases; a run where they did not would pass this part
    // without testing the retry.
    let racing = (0..4).map(|_| app.ok(SEND_TEMPLATE, send("order-A-2")));
    let answers = futures::future::join_all(racing).await;
    let ids: Vec<&Value> = answers
        .iter()
        .map(|a| &a["sendTemplateMessage"]["id"])
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{answers:#?}");
    assert_eq!(message_count(&app).await, 2);
}

async fn simulation_is_for_sandbox_senders_only(app: TestApp) {
    let meta = waflow_tests::Meta::start().await;
    let cloud = app.cloud_sender(&meta, "+14155550102", "PN-SIM").await;
    let body = app
        .gql(
            "mutation($input: SimulateInboundMessageInput!) { simulateInboundMessage(input: $input) { id } }",
            json!({"input": {"senderId": cloud, "from": CUSTOMER, "text": "hi"}}),
        )
        .await;
    assert_eq!(error_fields(&body), ["senderId"]);
}

waflow_tests::on_both_databases!(
    free_form_text_within_the_window,
    text_checks_name_the_problem,
    templates_are_checked_and_rendered,
    named_placeholders_take_named_values,
    opted_out_customers_get_no_marketing,
    low_quality_senders_pause_marketing,
    rate_limit_refuses_instead_of_sending,
    idempotency_keys_send_once,
    simulation_is_for_sandbox_senders_only,
);

mod a_send_looks_up_its_idempotency_key_once {
    #[tokio::test]
    async fn sqlite() {
        super::a_send_looks_up_its_idempotency_key_once(waflow_tests::Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        super::a_send_looks_up_its_idempotency_key_once(waflow_tests::Backend::Postgres).await;
    }
}
