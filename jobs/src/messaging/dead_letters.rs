//! Dead letters: what a provider sent that Waflow could not keep as a message, recorded whole
//! (table `inbound_dead_letter`, a warning in the log, the metric
//! `waflow_inbound_dead_letters_total{reason}`) so that nothing is skipped without a trace.
//! The webhook still answers 200 for them: Meta would redeliver the same unreadable body.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;
use uuid::Uuid;
use waflow_entities::{inbound_dead_letter, sender};

use crate::{
    Services,
    error::Result,
    pagination::{Page, PageRequest, paginate},
};

/// Why an entry became a dead letter, as the metric's label.
#[derive(Debug, Clone, Copy)]
pub enum Cause {
    /// A `messages[]` item without an id or a customer.
    UnreadableMessage,
    /// A change for a phone number id that no sender of the signing app has.
    UnknownPhoneNumber,
    /// A system notice older than Meta redelivers: a replay, not applied.
    StaleNotice,
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::UnreadableMessage => "unreadable_message",
            Cause::UnknownPhoneNumber => "unknown_phone_number",
            Cause::StaleNotice => "stale_notice",
        }
    }
}

/// Records `raw` as a dead letter of `sender` (when known), saying `why`.
pub async fn record(
    services: &Services,
    sender: Option<&sender::Model>,
    cause: Cause,
    why: &str,
    raw: &Value,
) -> Result<()> {
    let row = inbound_dead_letter::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(sender.map(|s| s.workspace_id)),
        sender_id: Set(sender.map(|s| s.id)),
        reason: Set(why.to_owned()),
        raw: Set(raw.clone()),
        created_at: Set(Utc::now()),
    }
    .insert(&services.db)
    .await?;
    metrics::counter!("waflow_inbound_dead_letters_total", "reason" => cause.label()).increment(1);
    tracing::warn!(
        dead_letter_id = %row.id,
        sender_id = ?sender.map(|s| s.id),
        reason = why,
        "kept an inbound entry Waflow could not read as a dead letter"
    );
    Ok(())
}

/// The workspace's dead letters, oldest first. Those of a phone number id no sender has
/// belong to no workspace: the log and the metric tell the operator.
pub async fn list(
    services: &Services,
    workspace_id: Uuid,
    page: PageRequest,
) -> Result<Page<inbound_dead_letter::Model>> {
    let select = inbound_dead_letter::Entity::find()
        .filter(inbound_dead_letter::Column::WorkspaceId.eq(workspace_id));
    paginate(&services.db, select, inbound_dead_letter::Column::Id, page).await
}
