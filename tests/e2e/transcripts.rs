//! Transcripts for integrators: filtered, stably paged conversations, and the NDJSON export.

use chrono::{Duration, Utc};
use sea_orm::{EntityTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    conversation,
    enums::{ConversationStatus, ConversationType, EndReason},
};
use waflow_tests::{TestApp, error_code, error_fields};

use crate::migrations::workspace_id;

const LIST: &str = "query($f: ConversationFilter, $first: Int, $after: String) { conversations(filter: $f, first: $first, after: $after) { \
    edges { node { id status customerPhone sender { id } } } pageInfo { hasNextPage endCursor } } }";

fn ids(data: &Value) -> Vec<String> {
    data["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn conversations_filter_and_page_stably(app: TestApp) {
    let a = app.sandbox_sender("+14155550100").await;
    let b = app.sandbox_sender("+14155550101").await;
    let c1 = app.customer_writes(&a, "+14155550201", "one").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c2 = app.customer_writes(&a, "+14155550202", "two").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c3 = app.customer_writes(&b, "+14155550201", "three").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before_end = Utc::now();
    app.ok(
        "mutation($id: ID!) { endConversation(id: $id) { id } }",
        json!({"id": c2}),
    )
    .await;

    assert_eq!(ids(&app.ok(LIST, json!({})).await), [c1.as_str(), &c2, &c3]);
    assert_eq!(
        ids(&app.ok(LIST, json!({"f": {"status": "ENDED"}})).await),
        [c2.as_str()]
    );
    assert_eq!(
        ids(&app
            .ok(LIST, json!({"f": {"status": "ACTIVE", "senderId": a}}))
            .await),
        [c1.as_str()]
    );
    assert_eq!(
        ids(&app
            .ok(LIST, json!({"f": {"customerPhone": "+14155550201"}}))
            .await),
        [c1.as_str(), &c3]
    );
    assert_eq!(
        ids(&app
            .ok(LIST, json!({"f": {"customerPhone": "+14155559999"}}))
            .await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&app
            .ok(LIST, json!({"f": {"endedAfter": before_end.to_rfc3339()}}))
            .await),
        [c2.as_str()]
    );
    assert_eq!(
        ids(&app
            .ok(LIST, json!({"f": {"endedAfter": Utc::now().to_rfc3339()}}))
            .await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&app
            .ok(
                LIST,
                json!({"f": {"updatedAfter": before_end.to_rfc3339()}})
            )
            .await),
        [c2.as_str()]
    );

    // A page, then a new conversation, then the next page: nothing skipped or repeated.
    let page = app.ok(LIST, json!({"first": 2})).await;
    assert_eq!(ids(&page), [c1.as_str(), &c2]);
    let c4 = app.customer_writes(&b, "+14155550204", "four").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let next = app
        .ok(
            LIST,
            json!({"first": 2, "after": page["conversations"]["pageInfo"]["endCursor"]}),
        )
        .await;
    assert_eq!(ids(&next), [c3.as_str(), &c4]);

    let bad = app.gql(LIST, json!({"f": {"customerPhone": "0712"}})).await;
    assert_eq!(error_code(&bad), Some("INVALID_PHONE_NUMBER"));
}

/// Stores `n` ended conversations directly (what the lifecycle would have stored), the first
/// ending one hour ago, each a second later.
async fn ended_conversations(app: &TestApp, n: usize) -> (Vec<Uuid>, chrono::DateTime<Utc>) {
    let workspace_id = workspace_id(app).await;
    // Whole microseconds: what both databases store exactly.
    let start = chrono::DateTime::from_timestamp_micros(
        (Utc::now() - Duration::hours(1)).timestamp_micros(),
    )
    .unwrap();
    let mut ids = Vec::new();
    let rows: Vec<conversation::ActiveModel> = (0..n)
        .map(|i| {
            let id = Uuid::now_v7();
            ids.push(id);
            let ended_at = start + Duration::seconds(i as i64);
            conversation::ActiveModel {
                id: Set(id),
                workspace_id: Set(workspace_id),
                r#type: Set(ConversationType::Api),
                status: Set(ConversationStatus::Ended),
                end_reason: Set(Some(EndReason::Manual)),
                sender_id: Set(None),
                contact_id: Set(None),
                customer_identifier: Set(Some(format!("crm-{i}"))),
                assistant_id: Set(None),
                ai_enabled: Set(true),
                input_variables: Set(json!({})),
                extracted_variables: Set(json!({})),
                ended_payload: Set(Some(
                    json!({"conversationId": id, "customerIdentifier": format!("crm-{i}"),
                    "transcriptText": "Customer: hello\nAI: ".to_owned() + &"x".repeat(500)}),
                )),
                message_count: Set(2),
                created_at: Set(ended_at),
                last_message_at: Set(ended_at),
                ended_at: Set(Some(ended_at)),
                ..Default::default()
            }
        })
        .collect();
    for chunk in rows.chunks(200) {
        conversation::Entity::insert_many(chunk.to_vec())
            .exec(&app.services.db)
            .await
            .unwrap();
    }
    (ids, start)
}

async fn the_export_streams_every_ended_conversation(app: TestApp) {
    let (ids, start) = ended_conversations(&app, 1000).await;
    let sender_id = app.sandbox_sender("+14155550100").await;
    app.customer_writes(&sender_id, "+14155550201", "still active")
        .await;

    let response = app
        .http
        .get(app.url("/api/conversations/export"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let body = response.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        1000,
        "every ended conversation once, the active one not"
    );
    let exported: Vec<Uuid> = lines
        .iter()
        .map(|l| l["conversationId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        exported, ids,
        "oldest first, no gaps or repeats across batches"
    );

    // After the 900th ended: the last 100.
    let since =
        (start + Duration::seconds(899)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let recent = app
        .http
        .get(app.url(&format!(
            "/api/conversations/export?endedAfter={}",
            since.replace('+', "%2B")
        )))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(recent.lines().count(), 100);

    let unauthenticated = app
        .http
        .get(app.url("/api/conversations/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let refused: Value = unauthenticated.json().await.unwrap();
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"), "{refused}");
    let other = app.other_workspace().await;
    let foreign = app
        .http
        .get(app.url("/api/conversations/export"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign.text().await.unwrap(),
        "",
        "another workspace exports nothing of this one"
    );
    let bad = app
        .http
        .get(app.url("/api/conversations/export?endedAfter=yesterday"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let refused: Value = bad.json().await.unwrap();
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"), "{refused}");
    assert_eq!(error_fields(&refused), ["endedAfter"], "{refused}");
}

waflow_tests::on_both_databases!(
    conversations_filter_and_page_stably,
    the_export_streams_every_ended_conversation
);
