//! The migration set runs forward and back on both databases, and the database itself enforces
//! the uniqueness rules later features rely on.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use uuid::Uuid;
use waflow_entities::{
    contact, conversation,
    enums::{
        ConversationStatus, ConversationType, MessageDirection, MessageKind, MessageRole,
        MessageStatus, RunStatus,
    },
    flow_run, message,
};
use waflow_migration::{Migrator, MigratorTrait};
use waflow_tests::{Backend, TestApp, test_database};

async fn reversible(backend: Backend) {
    let Some((db, _guard)) = test_database(backend).await else {
        return;
    };
    assert_eq!(
        Migrator::get_pending_migrations(&db).await.unwrap().len(),
        0
    );
    Migrator::down(&db, None)
        .await
        .expect("every migration rolls back");
    let applied = Migrator::get_applied_migrations(&db).await.unwrap();
    assert!(applied.is_empty(), "still applied: {}", applied.len());
    let leftover = db.execute_unprepared("SELECT 1 FROM sender").await;
    assert!(
        leftover.is_err(),
        "the sender table should be gone after down"
    );
    Migrator::up(&db, None)
        .await
        .expect("migrations apply again after a rollback");
}

#[tokio::test]
async fn migrations_are_reversible_on_sqlite() {
    reversible(Backend::Sqlite).await;
}

#[tokio::test]
async fn migrations_are_reversible_on_postgres() {
    reversible(Backend::Postgres).await;
}

pub(crate) async fn insert_contact(
    app: &TestApp,
    workspace_id: Uuid,
    phone: &str,
) -> contact::Model {
    let now = Utc::now();
    contact::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        phone: Set(Some(phone.into())),
        user_id: Set(None),
        username: Set(None),
        wa_id: Set(None),
        name: Set(None),
        attributes: Set(serde_json::json!({})),
        opted_out: Set(false),
        opted_out_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&app.services.db)
    .await
    .unwrap()
}

pub(crate) fn active_conversation(
    workspace_id: Uuid,
    sender_id: Uuid,
    contact_id: Uuid,
) -> conversation::ActiveModel {
    let now = Utc::now();
    conversation::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        r#type: Set(ConversationType::Whatsapp),
        status: Set(ConversationStatus::Active),
        end_reason: Set(None),
        sender_id: Set(Some(sender_id)),
        contact_id: Set(Some(contact_id)),
        customer_identifier: Set(None),
        assistant_id: Set(None),
        ai_enabled: Set(true),
        input_variables: Set(serde_json::json!({})),
        extracted_variables: Set(serde_json::json!({})),
        ended_payload: Set(None),
        message_count: Set(0),
        created_at: Set(now),
        last_message_at: Set(now),
        ended_at: Set(None),
        ..Default::default()
    }
}

pub(crate) fn inbound_message(c: &conversation::Model, provider_id: &str) -> message::ActiveModel {
    let now = Utc::now();
    message::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(c.workspace_id),
        conversation_id: Set(c.id),
        sender_id: Set(c.sender_id),
        contact_id: Set(c.contact_id),
        direction: Set(MessageDirection::Inbound),
        role: Set(MessageRole::Customer),
        kind: Set(MessageKind::Text),
        body: Set(Some("hello".into())),
        template_id: Set(None),
        template_params: Set(None),
        provider_message_id: Set(Some(provider_id.into())),
        status: Set(MessageStatus::Received),
        error_code: Set(None),
        error_message: Set(None),
        idempotency_key: Set(None),
        payload: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

pub(crate) async fn workspace_id(app: &TestApp) -> Uuid {
    app.services
        .api_keys()
        .authenticate(Some(&app.key))
        .await
        .unwrap()
        .workspace_id
}

/// At most one ACTIVE conversation per (sender, contact), and one stored message per provider
/// message id and sender: concurrent webhooks cannot double-create either.
async fn database_enforces_uniqueness(app: TestApp) {
    let workspace_id = workspace_id(&app).await;
    let sender_id: Uuid = app.sandbox_sender("+14155550100").await.parse().unwrap();
    let contact = insert_contact(&app, workspace_id, "+14155550101").await;
    let db = &app.services.db;

    let first = active_conversation(workspace_id, sender_id, contact.id)
        .insert(db)
        .await
        .unwrap();
    let second = active_conversation(workspace_id, sender_id, contact.id)
        .insert(db)
        .await;
    assert!(
        second.is_err(),
        "a second ACTIVE conversation for the same pair must be refused"
    );
    let mut ended = active_conversation(workspace_id, sender_id, contact.id);
    ended.status = Set(ConversationStatus::Ended);
    ended
        .insert(db)
        .await
        .expect("ended conversations do not count");

    inbound_message(&first, "wamid.1").insert(db).await.unwrap();
    let duplicate = inbound_message(&first, "wamid.1").insert(db).await;
    assert!(
        duplicate.is_err(),
        "the same provider message id must be stored once per sender"
    );
}

waflow_tests::on_both_databases!(database_enforces_uniqueness);

/// Runs parked before `wake_at` existed get it from their state, so the reconciler does not
/// take them for overdue; finished runs do not.
async fn parked_runs_keep_their_wake_time(backend: Backend) {
    // No workers: the runs stay as this test writes them.
    let Some(app) = waflow_tests::spawn_app_without_workers(backend).await else {
        return;
    };
    let (flow, _) = crate::flows::live_flow(
        &app,
        serde_json::json!({"trigger": {"type": "manual"}, "steps": [{"id": "pause", "type": "delay", "seconds": 60}]}),
    )
    .await;
    let parked = crate::flows::run_flow(&app, &flow, serde_json::json!({})).await;
    let finished = crate::flows::run_flow(&app, &flow, serde_json::json!({})).await;
    let db = &app.services.db;
    let at = "2026-12-01T10:00:00.123456Z";
    let state = serde_json::json!({"frames": [{"block": {"kind": "root"}, "index": 0}],
        "wake": {"token": Uuid::now_v7(), "at": at, "reason": "delay"}});
    for (id, status) in [
        (&parked, RunStatus::Waiting),
        (&finished, RunStatus::Succeeded),
    ] {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        flow_run::Entity::update_many()
            .set(flow_run::ActiveModel {
                status: Set(status),
                state: Set(state.clone()),
                ..Default::default()
            })
            .filter(flow_run::Column::Id.eq(Uuid::parse_str(id).unwrap()))
            .exec(db)
            .await
            .unwrap();
    }
    // Back to before m0015 (which added `wake_at`), whatever came after it, and up again.
    let applied = Migrator::get_applied_migrations(db).await.unwrap();
    let m0015 = applied
        .iter()
        .position(|m| m.name() == "m0015_run_fencing")
        .unwrap();
    Migrator::down(db, Some((applied.len() - m0015) as u32))
        .await
        .unwrap();
    Migrator::up(db, None).await.unwrap();
    let wake_at = |id: &str| {
        let id = Uuid::parse_str(id).unwrap();
        async move {
            use sea_orm::EntityTrait;
            flow_run::Entity::find_by_id(id)
                .one(db)
                .await
                .unwrap()
                .unwrap()
                .wake_at
        }
    };
    assert_eq!(
        wake_at(&parked).await,
        Some(chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc())
    );
    assert_eq!(wake_at(&finished).await, None);
}

#[tokio::test]
async fn parked_runs_keep_their_wake_time_on_sqlite() {
    parked_runs_keep_their_wake_time(Backend::Sqlite).await;
}

#[tokio::test]
async fn parked_runs_keep_their_wake_time_on_postgres() {
    parked_runs_keep_their_wake_time(Backend::Postgres).await;
}
