//! Templates: components and placeholders, review status, filters.

use serde_json::{Value, json};
use waflow_tests::{TestApp, body_examples, error_code, error_fields};

const CREATE: &str = "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { \
    id name language category status variableCount sender { id phoneNumber } \
    components { header { format text } body footer buttons { type text url phoneNumber } bodyExamples } } }";

fn input(sender_id: &str, name: &str, body: &str) -> Value {
    json!({"input": {"senderId": sender_id, "name": name, "language": "en_US", "category": "UTILITY",
                     "components": {"body": body, "bodyExamples": body_examples(body)}}})
}

async fn templates_parse_placeholders_and_start_pending(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155552000").await;
    let mut create = input(
        &sender_id,
        "order_confirmed",
        "Hi {{1}}, your order {{2}} ships {{3}}. Thanks {{1}}!",
    );
    create["input"]["components"]["header"] =
        json!({"format": "TEXT", "text": "Order {{1}}", "example": "A-1"});
    create["input"]["components"]["footer"] = json!("Reply STOP to opt out");
    create["input"]["components"]["buttons"] = json!([
        {"type": "QUICK_REPLY", "text": "Stop"},
        {"type": "URL", "text": "Track", "url": "https://example.com/t"},
        {"type": "PHONE_NUMBER", "text": "Call us", "phoneNumber": "+14155552001"}]);
    create["input"]["components"]["bodyExamples"] = json!(["Ann", "A-1", "today"]);
    let data = app.ok(CREATE, create).await;
    let t = &data["createTemplate"];
    assert_eq!(t["status"], "PENDING");
    assert_eq!(t["variableCount"], 3);
    assert_eq!(t["sender"]["id"], sender_id.as_str());
    assert_eq!(
        t["components"]["header"],
        json!({"format": "TEXT", "text": "Order {{1}}"})
    );
    assert_eq!(
        t["components"]["buttons"][1],
        json!({"type": "URL", "text": "Track", "url": "https://example.com/t", "phoneNumber": null})
    );
    assert_eq!(
        t["components"]["bodyExamples"],
        json!(["Ann", "A-1", "today"])
    );

    let read = app
        .ok("query($id: ID!) { template(id: $id) { name language category variableCount components { footer } } }", json!({"id": t["id"]}))
        .await;
    assert_eq!(
        read["template"],
        json!({"name": "order_confirmed", "language": "en_US", "category": "UTILITY", "variableCount": 3,
               "components": {"footer": "Reply STOP to opt out"}})
    );
}

async fn bad_templates_are_refused_with_every_problem_named(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155552100").await;
    let mut bad = input(&sender_id, "Order Confirmed!", "Hi {{1}} and {{3}}");
    bad["input"]["language"] = json!("english");
    bad["input"]["components"]["footer"] = json!("Call {{1}}");
    bad["input"]["components"]["buttons"] = json!([{"type": "URL", "text": "Open"},
        {"type": "PHONE_NUMBER", "text": "Call", "phoneNumber": "555-1234"}]);
    let body = app.gql(CREATE, bad).await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"));
    assert_eq!(
        error_fields(&body),
        [
            "name",
            "language",
            "components.body",
            "components.footer",
            "components.buttons[0].url",
            "components.buttons[1].phoneNumber"
        ]
    );
    let named = app
        .gql(
            CREATE,
            input(&sender_id, "named", "Hi {{customer_name}} and {{1}}"),
        )
        .await;
    assert_eq!(error_fields(&named), ["components.body"]);
    let too_long = app
        .gql(CREATE, input(&sender_id, "long", &"x".repeat(1025)))
        .await;
    assert_eq!(error_fields(&too_long), ["components.body"]);

    let unknown_sender = app
        .gql(
            CREATE,
            input("01a20dce-95e5-7470-87e7-0f8de39e638c", "x", "Hi"),
        )
        .await;
    assert_eq!(error_code(&unknown_sender), Some("SENDER_NOT_FOUND"));

    app.ok(CREATE, input(&sender_id, "welcome", "Hi")).await;
    let duplicate = app.gql(CREATE, input(&sender_id, "welcome", "Hello")).await;
    assert_eq!(error_fields(&duplicate), ["name"]);
    let total = app
        .ok("{ templates { edges { node { name } } } }", json!({}))
        .await;
    assert_eq!(
        total["templates"]["edges"],
        json!([{"node": {"name": "welcome"}}]),
        "nothing else stored"
    );
}

async fn sandbox_review_status_and_edits(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155552200").await;
    let id = app.ok(CREATE, input(&sender_id, "promo", "Hi {{1}}")).await["createTemplate"]["id"]
        .clone();
    let set = "mutation($id: ID!, $status: TemplateStatus!, $reason: String) { \
               setTemplateStatus(id: $id, status: $status, reason: $reason) { status statusReason } }";
    let approved = app.ok(set, json!({"id": id, "status": "APPROVED"})).await;
    assert_eq!(
        approved["setTemplateStatus"],
        json!({"status": "APPROVED", "statusReason": null})
    );
    let rejected = app
        .ok(
            set,
            json!({"id": id, "status": "REJECTED", "reason": "INVALID_FORMAT"}),
        )
        .await;
    assert_eq!(
        rejected["setTemplateStatus"],
        json!({"status": "REJECTED", "statusReason": "INVALID_FORMAT"})
    );

    let edited = app
        .ok(
            "mutation($id: ID!) { updateTemplate(id: $id, input: {category: MARKETING, \
               components: {body: \"Hi {{1}}, {{2}} off!\", bodyExamples: [\"Ann\", \"20%\"]}}) { status category variableCount } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        edited["updateTemplate"],
        json!({"status": "PENDING", "category": "MARKETING", "variableCount": 2})
    );
    let bad_edit = app
        .gql("mutation($id: ID!) { updateTemplate(id: $id, input: {components: {body: \"{{2}}\"}}) { id } }", json!({"id": id}))
        .await;
    assert_eq!(error_fields(&bad_edit), ["components.body"]);

    let deleted = app
        .ok(
            "mutation($id: ID!) { deleteTemplate(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(deleted["deleteTemplate"], id);
}

async fn templates_filter_by_sender_and_status(app: TestApp) {
    let a = app.sandbox_sender("+14155552400").await;
    let b = app.sandbox_sender("+14155552401").await;
    let a1 = app.ok(CREATE, input(&a, "a_one", "Hi")).await["createTemplate"]["id"].clone();
    app.ok(CREATE, input(&a, "a_two", "Hi")).await;
    app.ok(CREATE, input(&b, "b_one", "Hi")).await;
    app.ok(
        "mutation($id: ID!) { setTemplateStatus(id: $id, status: APPROVED) { id } }",
        json!({"id": a1}),
    )
    .await;
    let names = |data: &Value| -> Vec<String> {
        data["templates"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let query = "query($s: ID, $st: TemplateStatus) { templates(senderId: $s, status: $st) { edges { node { name } } } }";
    assert_eq!(
        names(&app.ok(query, json!({"s": a})).await),
        ["a_one", "a_two"]
    );
    assert_eq!(names(&app.ok(query, json!({"s": b})).await), ["b_one"]);
    assert_eq!(
        names(&app.ok(query, json!({"st": "APPROVED"})).await),
        ["a_one"]
    );
    assert_eq!(
        names(&app.ok(query, json!({"s": b, "st": "APPROVED"})).await),
        Vec::<String>::new()
    );
}

waflow_tests::on_both_databases!(
    templates_parse_placeholders_and_start_pending,
    bad_templates_are_refused_with_every_problem_named,
    sandbox_review_status_and_edits,
    templates_filter_by_sender_and_status,
);
