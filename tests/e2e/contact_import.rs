//! `POST /api/contacts/import`: contacts upserted from CSV by phone, invalid rows reported by
//! line, and a file larger than the API's usual body limit streamed in batches.

use serde_json::{Value, json};
use waflow_tests::{TestApp, error_code, error_fields};

async fn import(app: &TestApp, key: Option<&str>, csv: String) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url("/api/contacts/import"))
        .header("content-type", "text/csv")
        .body(csv);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn contact(app: &TestApp, phone: &str) -> Value {
    let data = app
        .ok(
            "query($s: String!) { contacts(search: $s, first: 5) { edges { node { phone name attributes } } } }",
            json!({"s": phone}),
        )
        .await;
    data["contacts"]["edges"][0]["node"].clone()
}

async fn rows_are_upserted_and_bad_ones_reported(app: TestApp) {
    app.ok(
        "mutation { createContact(input: {phone: \"+14155550102\", name: \"Bob\", attributes: {vip: \"yes\"}}) { id } }",
        json!({}),
    )
    .await;
    let csv = "phone,name,plan,city\n\
        +14155550101,Ada,gold,Paris\n\
        +14155550102,,,Berlin\n\
        not-a-number,Eve,gold,\n\
        +14155550101,Ada Lovelace,platinum,\n\
        \"+1 415 555 0103\",Cy,silver,Rome\n\
        +999,Zed,,\n";
    let (status, report) = import(&app, Some(&app.key), csv.into()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(
        report["updated"], 2,
        "the existing contact and the repeated row"
    );
    assert_eq!(report["invalidCount"], 2);
    let invalid = report["invalid"].as_array().unwrap();
    assert_eq!(invalid[0]["line"], 4);
    assert_eq!(invalid[0]["phone"], "not-a-number");
    assert_eq!(invalid[1]["line"], 7);
    assert_eq!(invalid[1]["phone"], "+999");
    assert!(invalid[1]["reason"].as_str().unwrap().len() > 5);

    assert_eq!(
        contact(&app, "4155550101").await,
        json!({"phone": "+14155550101", "name": "Ada Lovelace", "attributes": {"plan": "platinum", "city": "Paris"}})
    );
    assert_eq!(
        contact(&app, "4155550102").await,
        json!({"phone": "+14155550102", "name": "Bob", "attributes": {"vip": "yes", "city": "Berlin"}}),
        "empty cells keep what the contact had"
    );
    assert_eq!(contact(&app, "4155550103").await["name"], "Cy");

    let (status, refused) = import(&app, Some(&app.key), "name,plan\nAda,gold\n".into()).await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "VALIDATION_FAILED"
    );
    let (status, refused) = import(&app, None, csv.into()).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"), "{refused}");
    // Another workspace's import never touches these contacts.
    let other = app.other_workspace().await;
    let (_, theirs) = import(
        &app,
        Some(&other),
        "phone,name\n+14155550101,Mallory\n".into(),
    )
    .await;
    assert_eq!(theirs["created"], 1);
    assert_eq!(contact(&app, "4155550101").await["name"], "Ada Lovelace");
}

async fn a_large_file_is_streamed(app: TestApp) {
    // 30,000 rows, about 1.3 MB: over the 1 MiB limit of other requests.
    let mut csv = String::from("phone,name,segment\n");
    for i in 0..30_000 {
        csv.push_str(&format!(
            "+1415{:07},Customer number {i},s{}\n",
            5_000_000 + i,
            i % 7
        ));
    }
    assert!(csv.len() > 1024 * 1024);
    let (status, report) = import(&app, Some(&app.key), csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], 30_000);
    assert_eq!(report["invalidCount"], 0);
    assert_eq!(
        contact(&app, "4155029999").await,
        json!({"phone": "+14155029999", "name": "Customer number 29999", "attributes": {"segment": "s4"}})
    );
}

async fn phones(app: &TestApp, filter: Value) -> Vec<String> {
    let data = app
        .ok(
            "query($f: ContactFilterInput) { contacts(filter: $f, first: 50) { edges { node { phone } } } }",
            json!({"f": filter}),
        )
        .await;
    data["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["phone"].as_str().unwrap().to_owned())
        .collect()
}

async fn tags_and_attributes_select_contacts(app: TestApp) {
    let csv = "phone,name,plan,tags\n+14155550101,Ada,gold,vip;2024\n+14155550102,Bob,silver,vip\n+14155550103,Cy,gold,\n";
    let (status, report) = import(&app, Some(&app.key), csv.into()).await;
    assert_eq!(status, 200, "{report}");
    let created = app
        .ok(
            "mutation { createContact(input: {phone: \"+14155550104\", tags: [\" vip \", \"vip\", \"new\"]}) { id tags } }",
            json!({}),
        )
        .await;
    assert_eq!(
        created["createContact"]["tags"],
        json!(["new", "vip"]),
        "trimmed, once each"
    );
    let id = created["createContact"]["id"].clone();
    app.ok(
        "mutation($id: ID!) { updateContact(id: $id, input: {tags: [\"lapsed\"], optedOut: true}) { id } }",
        json!({"id": id}),
    )
    .await;

    assert_eq!(
        phones(&app, json!({"tags": ["vip"]})).await,
        ["+14155550101", "+14155550102"]
    );
    assert_eq!(
        phones(&app, json!({"tags": ["vip", "2024"]})).await,
        ["+14155550101"]
    );
    assert_eq!(
        phones(&app, json!({"attributes": {"plan": "gold"}})).await,
        ["+14155550101", "+14155550103"]
    );
    assert_eq!(
        phones(
            &app,
            json!({"attributes": {"plan": "gold"}, "tags": ["vip"]})
        )
        .await,
        ["+14155550101"]
    );
    assert_eq!(
        phones(&app, json!({"optedOut": true, "tags": ["lapsed"]})).await,
        ["+14155550104"]
    );
    assert!(phones(&app, json!({"tags": ["nobody"]})).await.is_empty());

    let query = "query($f: ContactFilterInput) { contacts(filter: $f) { edges { node { id } } } }";
    let bad = app
        .gql(query, json!({"f": {"attributes": {"plan": 5}}}))
        .await;
    assert_eq!(error_fields(&bad), ["filter.attributes.plan"]);
    let long = app
        .gql(query, json!({"f": {"tags": ["x".repeat(65)]}}))
        .await;
    assert_eq!(error_fields(&long), ["filter.tags"]);
    let empty = app
        .gql(
            "mutation($t: [String!]) { createContact(input: {phone: \"+14155550109\", tags: $t}) { id } }",
            json!({"t": [""]}),
        )
        .await;
    assert_eq!(error_fields(&empty), ["tags"]);
}

async fn an_upload_imports_through_graphql(app: TestApp) {
    let operations = json!({
        "query": "mutation($f: Upload!) { importContacts(csv: $f) { created updated invalidCount invalid { line phone reason } } }",
        "variables": {"f": null}});
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({"0": ["variables.f"]}).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(b"phone,name\n+14155550101,Ada\nnope,Bad\n".to_vec())
                .file_name("contacts.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let answer: Value = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&app.key)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let report = &answer["data"]["importContacts"];
    assert_eq!(report["created"], 1, "{answer}");
    assert_eq!(report["updated"], 0);
    assert_eq!(report["invalidCount"], 1);
    assert_eq!(report["invalid"][0]["line"], 3);
    assert_eq!(report["invalid"][0]["phone"], "nope");
    assert!(
        report["invalid"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("E.164")
    );
    assert_eq!(contact(&app, "4155550101").await["name"], "Ada");
}

waflow_tests::on_both_databases!(
    an_upload_imports_through_graphql,
    rows_are_upserted_and_bad_ones_reported,
    a_large_file_is_streamed,
    tags_and_attributes_select_contacts,
);
