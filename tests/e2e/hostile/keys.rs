//! A revoked key keeps nothing: its open WebSockets close with 4403 within seconds, on the
//! process that revoked it and on the others, and also when the news of the revocation was
//! lost (the sweep finds it in the database).

use std::time::Duration;

use serde_json::json;
use waflow_jobs::{RedisSettings, Services};
use waflow_tests::{TestApp, spawn_app, spawn_server};

/// A second key of the app's workspace (the last one cannot be revoked); its id and secret.
async fn second_key(app: &TestApp) -> (String, String) {
    let created = app
        .ok(
            "mutation { createApiKey(input: {name: \"dashboard\"}) { id key } }",
            json!({}),
        )
        .await;
    (
        created["createApiKey"]["id"].as_str().unwrap().to_owned(),
        created["createApiKey"]["key"].as_str().unwrap().to_owned(),
    )
}

async fn revoke(app: &TestApp, id: &str) {
    app.ok(
        "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
        json!({"id": id}),
    )
    .await;
}

/// The input: a subscription open with K, then `revokeApiKey` K over HTTP. The socket
/// closes (no stream, no new operation on it), and K opens no new one.
async fn revoking_a_key_closes_its_sockets(app: TestApp) {
    let (id, key) = second_key(&app).await;
    let mut socket = app.subscriber(&key).await.unwrap();
    socket
        .subscribe("1", "subscription { messageReceived { message } }")
        .await;
    let mut other = app.subscriber(&app.key).await.unwrap();
    other
        .subscribe("1", "subscription { messageReceived { message } }")
        .await;
    revoke(&app, &id).await;
    // The event closes it at once; the sweep (5 s) is not needed here.
    assert_eq!(socket.close_code(Duration::from_secs(2)).await, Some(4403));
    assert_eq!(app.subscriber(&key).await.err().map(|c| c.code), Some(4403));
    // Another key's connection stays open.
    assert_eq!(other.close_code(Duration::from_millis(500)).await, None);
}

/// A revocation whose event never came (Redis away, another version) is found by the sweep.
async fn a_revocation_without_its_event_is_found(app: TestApp) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
    let (id, key) = second_key(&app).await;
    let mut socket = app.subscriber(&key).await.unwrap();
    socket
        .subscribe("1", "subscription { messageReceived { message } }")
        .await;
    waflow_entities::api_key::Entity::update_many()
        .set(waflow_entities::api_key::ActiveModel {
            revoked_at: Set(Some(chrono::Utc::now())),
            ..Default::default()
        })
        .filter(waflow_entities::api_key::Column::Id.eq(uuid::Uuid::parse_str(&id).unwrap()))
        .exec(&app.services.db)
        .await
        .unwrap();
    assert_eq!(socket.close_code(Duration::from_secs(8)).await, Some(4403));
}

waflow_tests::on_both_databases!(
    revoking_a_key_closes_its_sockets,
    a_revocation_without_its_event_is_found
);

/// Two API processes on one Redis: revoked on one, the socket on the other closes at once.
#[tokio::test]
async fn a_revocation_reaches_every_process() {
    let Some(first) = spawn_app(waflow_tests::Backend::Postgres).await else {
        return;
    };
    let settings = RedisSettings {
        url: std::env::var("WAFLOW_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        prefix: first.redis_prefix().unwrap().to_owned(),
    };
    let second = Services::production(
        first.services.db.clone(),
        first.services.secrets.clone(),
        &settings,
    )
    .await
    .unwrap();
    let second_addr = spawn_server(second, &[]).await;
    let (id, key) = second_key(&first).await;
    let mut socket = first.subscriber_at(second_addr, &key).await.unwrap();
    socket
        .subscribe("1", "subscription { messageReceived { message } }")
        .await;
    revoke(&first, &id).await;
    assert_eq!(socket.close_code(Duration::from_secs(2)).await, Some(4403));
}
