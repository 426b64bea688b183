//! Assistants' configuration: provider rules, validation, and the write-only API key.

use sea_orm::EntityTrait;
use serde_json::json;
use waflow_entities::assistant;
use waflow_tests::{TestApp, error_code, error_fields};

const FIELDS: &str = "id name provider baseUrl model apiKeySet temperature maxTokens systemPrompt \
    extractionFields { name type description options pattern } scriptedRules { pattern reply } fallbackReply";

async fn assistants_are_configured_and_keys_stay_secret(app: TestApp) {
    let create = format!(
        "mutation($input: CreateAssistantInput!) {{ createAssistant(input: $input) {{ {FIELDS} }} }}"
    );
    let data = app
        .ok(
            &create,
            json!({"input": {"name": "Support", "provider": "OPENAI_COMPATIBLE", "baseUrl": "http://127.0.0.1:9/v1",
                "model": "gpt-4o-mini", "apiKey": "sk-very-secret", "temperature": 0.3, "maxTokens": 300,
                "systemPrompt": "You help {{ customer_name }}.",
                "extractionFields": [{"name": "intent", "type": "ENUM", "options": ["buy", "support"]},
                                     {"name": "order_id", "type": "STRING", "pattern": "A-\\d+"}]}}),
        )
        .await;
    let a = &data["createAssistant"];
    assert_eq!(a["apiKeySet"], true);
    assert_eq!(
        a["extractionFields"][0],
        json!({"name": "intent", "type": "ENUM", "description": null,
        "options": ["buy", "support"], "pattern": null})
    );
    assert!(!data.to_string().contains("sk-very-secret"));
    let row = assistant::Entity::find()
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap();
    let stored = row.api_key_enc.unwrap();
    assert!(!stored.contains("sk-very-secret"));
    assert_eq!(
        app.services.secrets.decrypt(&stored).unwrap(),
        "sk-very-secret"
    );

    let update = format!(
        "mutation($id: ID!, $input: UpdateAssistantInput!) {{ updateAssistant(id: $id, input: $input) {{ {FIELDS} }} }}"
    );
    let updated = app
        .ok(
            &update,
            json!({"id": a["id"], "input": {"apiKey": "", "temperature": 1.0}}),
        )
        .await;
    assert_eq!(updated["updateAssistant"]["apiKeySet"], false);
    assert_eq!(
        updated["updateAssistant"]["model"], "gpt-4o-mini",
        "unchanged settings stay"
    );
    let listed = app
        .ok(
            &format!("{{ assistants {{ edges {{ node {{ {FIELDS} }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(listed["assistants"]["edges"][0]["node"]["temperature"], 1.0);

    // Switching to SCRIPTED needs rules or a fallback; the whole result is validated.
    let switch = app
        .gql(
            &update,
            json!({"id": a["id"], "input": {"provider": "SCRIPTED"}}),
        )
        .await;
    assert_eq!(error_fields(&switch), ["scriptedRules"]);
    let deleted = app
        .ok(
            "mutation($id: ID!) { deleteAssistant(id: $id) }",
            json!({"id": a["id"]}),
        )
        .await;
    assert_eq!(deleted["deleteAssistant"], a["id"]);
}

async fn bad_assistants_are_refused(app: TestApp) {
    let create =
        "mutation($input: CreateAssistantInput!) { createAssistant(input: $input) { id } }";
    let body = app
        .gql(
            create,
            json!({"input": {"name": "", "provider": "OPENAI_COMPATIBLE", "temperature": 3.5,
            "systemPrompt": "Hi {{ name", "extractionFields": [{"name": "1bad", "type": "ENUM"},
            {"name": "x", "type": "STRING", "pattern": "("}]}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"));
    assert_eq!(
        error_fields(&body),
        [
            "name",
            "baseUrl",
            "model",
            "temperature",
            "systemPrompt",
            "extractionFields[0].name",
            "extractionFields[0].options",
            "extractionFields[1].pattern"
        ]
    );
    let scripted = app
        .gql(create, json!({"input": {"name": "Bot", "provider": "SCRIPTED",
            "scriptedRules": [{"pattern": "price", "reply": "It costs 5"}, {"pattern": "[", "reply": "x"}]}}))
        .await;
    assert_eq!(error_fields(&scripted), ["scriptedRules[1].pattern"]);
    let empty = app
        .gql(
            create,
            json!({"input": {"name": "Bot", "provider": "SCRIPTED"}}),
        )
        .await;
    assert_eq!(error_fields(&empty), ["scriptedRules"]);
    let ok = app
        .ok(
            create,
            json!({"input": {"name": "Bot", "provider": "SCRIPTED",
            "scriptedRules": [{"pattern": "(?i)price", "reply": "It costs 5"}]}}),
        )
        .await;
    assert!(ok["createAssistant"]["id"].is_string());
}

waflow_tests::on_both_databases!(
    assistants_are_configured_and_keys_stay_secret,
    bad_assistants_are_refused
);
