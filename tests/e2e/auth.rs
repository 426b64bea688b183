//! Authentication by API key and isolation between workspaces.

use serde_json::json;
use waflow_tests::{TestApp, error_code, error_fields};

const WORKSPACE: &str = "{ workspace { id name } }";

async fn requests_without_a_valid_key_are_refused(app: TestApp) {
    for key in [None, Some("wf_not-a-real-key"), Some("garbage")] {
        let response = app
            .http
            .post(app.url("/graphql"))
            .json(&json!({"query": WORKSPACE}))
            .header(
                "authorization",
                key.map(|k| format!("Bearer {k}")).unwrap_or_default(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "key {key:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            error_code(&body),
            Some("UNAUTHENTICATED"),
            "key {key:?}: {body}"
        );
        assert!(body.get("data").is_none_or(|d| d.is_null()));
    }
    let data = app.ok(WORKSPACE, json!({})).await;
    assert_eq!(data["workspace"]["name"], "Test workspace");
}

async fn keys_rotate_and_revoked_keys_stop_working(app: TestApp) {
    let created = app
        .ok(
            "mutation { createApiKey(input: {name: \"zapier\"}) { id name prefix key } }",
            json!({}),
        )
        .await;
    let new_key = created["createApiKey"]["key"].as_str().unwrap().to_owned();
    let new_id = created["createApiKey"]["id"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with(created["createApiKey"]["prefix"].as_str().unwrap()));
    assert!(
        app.gql_as(Some(&new_key), WORKSPACE, json!({}))
            .await
            .get("errors")
            .is_none()
    );

    // The secret is shown once: listing keys never returns it.
    let listed = app
        .ok("{ apiKeys { id key prefix revokedAt } }", json!({}))
        .await;
    assert_eq!(listed["apiKeys"].as_array().unwrap().len(), 2);
    assert!(
        listed["apiKeys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["key"].is_null())
    );
    assert!(!listed.to_string().contains(&new_key));

    let revoked = app
        .ok(
            "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
            json!({"id": new_id}),
        )
        .await;
    assert!(revoked["revokeApiKey"]["revokedAt"].is_string());
    let refused = app.gql_as(Some(&new_key), WORKSPACE, json!({})).await;
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"));

    // The last active key cannot be revoked: nothing could make a new one.
    let own = listed["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] != new_id.as_str())
        .unwrap()["id"]
        .clone();
    let last = app
        .gql(
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            json!({"id": own}),
        )
        .await;
    assert_eq!(error_code(&last), Some("VALIDATION_FAILED"), "{last}");
    assert_eq!(error_fields(&last), ["id"]);

    let empty_name = app
        .gql(
            "mutation { createApiKey(input: {name: \" \"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_fields(&empty_name), ["name"]);
}

/// Another workspace's rows answer NOT_FOUND everywhere, as if they did not exist.
async fn workspaces_see_only_their_own_rows(app: TestApp) {
    let sender_id = app.sandbox_sender("+14155550111").await;
    let template = app
        .ok(
            "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
            json!({"input": {"senderId": sender_id, "name": "hello", "language": "en", "category": "UTILITY",
                   "components": {"body": "Hi {{1}}", "bodyExamples": ["Ana"]}}}),
        )
        .await;
    let template_id = template["createTemplate"]["id"].as_str().unwrap();
    let contact = app
        .ok(
            "mutation { createContact(input: {phone: \"+14155550112\"}) { id } }",
            json!({}),
        )
        .await;
    let contact_id = contact["createContact"]["id"].as_str().unwrap();
    let assistant = app
        .ok(
            "mutation { createAssistant(input: {name: \"Bot\", provider: SCRIPTED, fallbackReply: \"Hi\"}) { id } }",
            json!({}),
        )
        .await;
    let assistant_id = assistant["createAssistant"]["id"].as_str().unwrap();
    let own_key_id = app.ok("{ apiKeys { id } }", json!({})).await["apiKeys"][0]["id"].clone();

    let other = app.other_workspace().await;
    let id = |v: &str| json!({"id": v});
    for (query, vars) in [
        ("query($id: ID!) { sender(id: $id) { id } }", id(&sender_id)),
        (
            "mutation($id: ID!) { updateSender(id: $id, input: {displayName: \"x\"}) { id } }",
            id(&sender_id),
        ),
        (
            "mutation($id: ID!) { deleteSender(id: $id) }",
            id(&sender_id),
        ),
        (
            "query($id: ID!) { template(id: $id) { id } }",
            id(template_id),
        ),
        (
            "mutation($id: ID!) { setTemplateStatus(id: $id, status: APPROVED) { id } }",
            id(template_id),
        ),
        (
            "mutation($id: ID!) { deleteTemplate(id: $id) }",
            id(template_id),
        ),
        (
            "query($id: ID!) { contact(id: $id) { id } }",
            id(contact_id),
        ),
        (
            "mutation($id: ID!) { updateContact(id: $id, input: {name: \"x\"}) { id } }",
            id(contact_id),
        ),
        (
            "mutation($id: ID!) { deleteContact(id: $id) { contactId } }",
            id(contact_id),
        ),
        (
            "query($id: ID!) { assistant(id: $id) { id } }",
            id(assistant_id),
        ),
        (
            "mutation($id: ID!) { deleteAssistant(id: $id) }",
            id(assistant_id),
        ),
        (
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            json!({"id": own_key_id}),
        ),
    ] {
        let body = app.gql_as(Some(&other), query, vars).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{query}: {body}");
    }
    let foreign_sender = app
        .gql_as(
            Some(&other),
            "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
            json!({"input": {"senderId": sender_id, "name": "x", "language": "en", "category": "UTILITY",
                   "components": {"body": "Hi"}}}),
        )
        .await;
    assert_eq!(error_code(&foreign_sender), Some("SENDER_NOT_FOUND"));

    let lists = app
        .gql_as(
            Some(&other),
            "{ senders { edges { node { id } } } templates { edges { node { id } } } \
               contacts { edges { node { id } } } assistants { edges { node { id } } } apiKeys { id } }",
            json!({}),
        )
        .await;
    for list in ["senders", "templates", "contacts", "assistants"] {
        assert_eq!(lists["data"][list]["edges"], json!([]), "{list}: {lists}");
    }
    assert_eq!(lists["data"]["apiKeys"].as_array().unwrap().len(), 1);

    // Nothing was changed by the refused attempts.
    let still = app
        .ok(
            "query($id: ID!) { sender(id: $id) { displayName } }",
            id(&sender_id),
        )
        .await;
    assert_eq!(still["sender"]["displayName"], "Acme");
}

async fn a_malformed_id_answers_not_found(app: TestApp) {
    let body = app
        .gql("{ sender(id: \"not-a-uuid\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
}

waflow_tests::on_both_databases!(
    requests_without_a_valid_key_are_refused,
    keys_rotate_and_revoked_keys_stop_working,
    workspaces_see_only_their_own_rows,
    a_malformed_id_answers_not_found,
);
