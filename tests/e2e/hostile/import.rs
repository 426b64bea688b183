//! Imports that would store or echo megabytes: the 50 MB cell was stored as an
//! attribute and echoed whole in the report of invalid rows.

use serde_json::{Value, json};
use waflow_tests::{Backend, TestApp, error_code, error_fields, spawn_app};

async fn import(app: &TestApp, csv: String) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/api/contacts/import"))
        .header("content-type", "text/csv")
        .bearer_auth(&app.key)
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn attributes_of(app: &TestApp) -> Vec<Value> {
    app.ok(
        "{ contacts(first: 10) { edges { node { phone attributes } } } }",
        json!({}),
    )
    .await["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test]
async fn a_huge_cell_stops_the_import_and_is_not_echoed() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let csv = format!(
        "phone,plan\n+14155550101,gold\n+14155550102,{}\n+14155550103,silver\n",
        "x".repeat(50 << 20)
    );
    let (status, report) = import(&app, csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], 1, "{report}");
    let reason = report["invalid"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("longer than 512 KiB"), "{reason}");
    assert_eq!(report["invalid"][0]["line"], 3);
    assert!(
        report.to_string().len() < 2_000,
        "the report echoes the cell"
    );
    let stored = attributes_of(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["attributes"], json!({"plan": "gold"}));
}

#[tokio::test]
async fn cells_columns_and_attributes_are_bounded() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    // A cell of 10 KB: its row is refused, and the report shows a few characters of it.
    let csv = format!(
        "phone,plan\n+14155550101,{}\n{},gold\n",
        "y".repeat(10_000),
        "z".repeat(10_000)
    );
    let (status, report) = import(&app, csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["invalid_count"]
            .as_u64()
            .or(report["invalidCount"].as_u64()),
        Some(2)
    );
    assert!(report.to_string().len() < 2_000, "{report}");
    assert!(
        report["invalid"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("at most 4096")
    );
    assert!(
        report["invalid"][1]["phone"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 65
    );
    // 200 columns.
    let header: Vec<String> = (0..200).map(|i| format!("c{i}")).collect();
    let (status, body) = import(&app, format!("phone,{}\n", header.join(","))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("at most 103"), "{body}");
    // The same bounds for a contact made through the API.
    let many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("a{i}"), json!(i))).collect();
    let answer = app
        .gql(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
            json!({"input": {"phone": "+14155550199", "attributes": many}}),
        )
        .await;
    assert_eq!(error_code(&answer), Some("VALIDATION_FAILED"), "{answer}");
    assert_eq!(error_fields(&answer), ["attributes"]);
}
