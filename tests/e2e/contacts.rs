//! Contacts: creation, search, opt-out, and erasure with their conversations and messages.

use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait};
use serde_json::json;
use waflow_entities::{contact, conversation, message};
use waflow_tests::{TestApp, error_code, error_fields};

use crate::migrations::{active_conversation, inbound_message, insert_contact, workspace_id};

const CREATE: &str = "mutation($input: CreateContactInput!) { createContact(input: $input) { \
    id phone name attributes optedOut optedOutAt createdAt } }";

async fn contacts_are_created_and_updated(app: TestApp) {
    let data = app
        .ok(CREATE, json!({"input": {"phone": "+44 20 7123 4567", "name": "Ann", "attributes": {"plan": "gold"}}}))
        .await;
    let c = &data["createContact"];
    assert_eq!(c["phone"], "+442071234567");
    assert_eq!(c["attributes"], json!({"plan": "gold"}));
    assert_eq!(c["optedOut"], false);

    let update = "mutation($id: ID!, $input: UpdateContactInput!) { updateContact(id: $id, input: $input) { \
                  name attributes optedOut optedOutAt } }";
    let opted = app
        .ok(
            update,
            json!({"id": c["id"], "input": {"optedOut": true, "attributes": {"plan": "free"}}}),
        )
        .await;
    assert_eq!(opted["updateContact"]["optedOut"], true);
    assert!(opted["updateContact"]["optedOutAt"].is_string());
    assert_eq!(opted["updateContact"]["name"], "Ann");
    assert_eq!(
        opted["updateContact"]["attributes"],
        json!({"plan": "free"})
    );
    let back = app
        .ok(update, json!({"id": c["id"], "input": {"optedOut": false}}))
        .await;
    assert_eq!(back["updateContact"]["optedOutAt"], json!(null));

    let bad = app
        .gql(
            update,
            json!({"id": c["id"], "input": {"attributes": [1, 2]}}),
        )
        .await;
    assert_eq!(error_fields(&bad), ["attributes"]);
    let bad_phone = app
        .gql(CREATE, json!({"input": {"phone": "07123456789"}}))
        .await;
    assert_eq!(error_code(&bad_phone), Some("INVALID_PHONE_NUMBER"));
    let duplicate = app
        .gql(CREATE, json!({"input": {"phone": "+442071234567"}}))
        .await;
    assert_eq!(error_fields(&duplicate), ["phone"]);
}

async fn contacts_search_by_phone_or_name(app: TestApp) {
    for (phone, name) in [
        ("+14155553001", "Ann Smith"),
        ("+14155553002", "Bob"),
        ("+442071234999", "annette"),
    ] {
        app.ok(CREATE, json!({"input": {"phone": phone, "name": name}}))
            .await;
    }
    let search = |term: &str| {
        let term = term.to_owned();
        let app = &app;
        async move {
            let data = app
                .ok(
                    "query($s: String) { contacts(search: $s) { edges { node { phone } } } }",
                    json!({"s": term}),
                )
                .await;
            data["contacts"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["phone"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("ANN").await, ["+14155553001", "+442071234999"]);
    assert_eq!(search("555300").await, ["+14155553001", "+14155553002"]);
    assert_eq!(search("+44 20").await, ["+442071234999"]);
    assert_eq!(
        search("%").await,
        Vec::<String>::new(),
        "LIKE wildcards are matched literally"
    );
    assert_eq!(search("").await.len(), 3);
}

/// `deleteContact` erases the contact with all its conversations and messages, reports how many,
/// and leaves other contacts' history alone.
async fn erasure_removes_conversations_and_messages(app: TestApp) {
    let workspace_id = workspace_id(&app).await;
    let sender_id: uuid::Uuid = app.sandbox_sender("+14155553100").await.parse().unwrap();
    let doomed = insert_contact(&app, workspace_id, "+14155553101").await;
    let kept = insert_contact(&app, workspace_id, "+14155553102").await;
    let db = &app.services.db;
    let first = active_conversation(workspace_id, sender_id, doomed.id)
        .insert(db)
        .await
        .unwrap();
    for i in 0..3 {
        inbound_message(&first, &format!("wamid.d{i}"))
            .insert(db)
            .await
            .unwrap();
    }
    let mut older = active_conversation(workspace_id, sender_id, doomed.id);
    older.status = sea_orm::Set(waflow_entities::enums::ConversationStatus::Ended);
    let older = older.insert(db).await.unwrap();
    inbound_message(&older, "wamid.d9")
        .insert(db)
        .await
        .unwrap();
    let other = active_conversation(workspace_id, sender_id, kept.id)
        .insert(db)
        .await
        .unwrap();
    inbound_message(&other, "wamid.k1")
        .insert(db)
        .await
        .unwrap();

    let data = app
        .ok(
            "mutation($id: ID!) { deleteContact(id: $id) { contactId conversationsDeleted messagesDeleted } }",
            json!({"id": doomed.id.to_string()}),
        )
        .await;
    assert_eq!(
        data["deleteContact"],
        json!({"contactId": doomed.id.to_string(), "conversationsDeleted": 2, "messagesDeleted": 4})
    );
    assert!(
        contact::Entity::find_by_id(doomed.id)
            .one(db)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(conversation::Entity::find().count(db).await.unwrap(), 1);
    assert_eq!(message::Entity::find().count(db).await.unwrap(), 1);
    let again = app
        .gql(
            "mutation($id: ID!) { deleteContact(id: $id) { contactId } }",
            json!({"id": doomed.id.to_string()}),
        )
        .await;
    assert_eq!(error_code(&again), Some("NOT_FOUND"));
}

waflow_tests::on_both_databases!(
    contacts_are_created_and_updated,
    contacts_search_by_phone_or_name,
    erasure_removes_conversations_and_messages,
);
