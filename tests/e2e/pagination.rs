//! Relay connections: pages, cursors and the page-size limit.

use serde_json::json;
use waflow_tests::{TestApp, error_code, error_fields};

const PAGE: &str = "query($first: Int, $after: String) { contacts(first: $first, after: $after) { \
    edges { cursor node { phone } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

async fn pages_walk_every_row_once_in_creation_order(app: TestApp) {
    let phones: Vec<String> = (0..5).map(|i| format!("+1415555400{i}")).collect();
    for phone in &phones {
        app.ok(
            "mutation($p: String!) { createContact(input: {phone: $p}) { id } }",
            json!({"p": phone}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut after = json!(null);
    let mut pages = 0;
    loop {
        let data = app.ok(PAGE, json!({"first": 2, "after": after})).await;
        let connection = &data["contacts"];
        pages += 1;
        for edge in connection["edges"].as_array().unwrap() {
            seen.push(edge["node"]["phone"].as_str().unwrap().to_owned());
        }
        assert_eq!(connection["pageInfo"]["hasPreviousPage"], pages > 1);
        if connection["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, phones);

    let all = app.ok(PAGE, json!({})).await;
    assert_eq!(
        all["contacts"]["edges"].as_array().unwrap().len(),
        5,
        "default page holds 20"
    );
    let none = app.ok(PAGE, json!({"first": 0})).await;
    assert_eq!(none["contacts"]["edges"], json!([]));
    assert_eq!(none["contacts"]["pageInfo"]["hasNextPage"], true);
}

async fn page_size_and_cursor_are_checked(app: TestApp) {
    for first in [101, -1] {
        let body = app.gql(PAGE, json!({"first": first})).await;
        assert_eq!(error_code(&body), Some("VALIDATION_FAILED"));
        assert_eq!(error_fields(&body), ["first"]);
    }
    let body = app.gql(PAGE, json!({"after": "bogus"})).await;
    assert_eq!(error_fields(&body), ["after"]);
    assert!(
        app.gql(PAGE, json!({"first": 100}))
            .await
            .get("errors")
            .is_none()
    );
}

waflow_tests::on_both_databases!(
    pages_walk_every_row_once_in_creation_order,
    page_size_and_cursor_are_checked
);
