//! Deliveries that cannot be new, whatever their signature says:
//!
//! - a message of a contact that was erased: its provider id is remembered, hashed, at
//!   erasure, and a replay of it is acknowledged and dropped, so an erased contact stays erased;
//! - a message older than Meta redelivers: Meta retries a failed webhook "with decreasing
//!   frequency … for up to 7 days" (WhatsApp Cloud API, Webhooks overview), so an older one is
//!   a replay. It is recorded, but runs no flow and no AI reply, announces nothing, and does not
//!   change the contact's opt-out. The age allowed is `Services::inbound_max_age` (eight days by
//!   default: Meta's seven and one to spare; `WAFLOW_INBOUND_MAX_AGE_HOURS`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set,
    sea_query::{Expr, ExprTrait as _, OnConflict, Query, SelectStatement},
};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use waflow_entities::{enums::MessageDirection, erased_message, message};

use crate::error::Result;

fn id_hash(provider_message_id: &str) -> String {
    hex::encode(Sha256::digest(provider_message_id.as_bytes()))
}

/// Whether `timestamp` is older than a redelivery can be.
pub fn is_stale(timestamp: DateTime<Utc>, max_age: Duration) -> bool {
    chrono::Duration::from_std(max_age).is_ok_and(|age| timestamp < Utc::now() - age)
}

/// Whether the message `provider_message_id` of `sender_id` belonged to an erased contact.
pub async fn is_erased(
    db: &impl ConnectionTrait,
    sender_id: Uuid,
    provider_message_id: &str,
) -> Result<bool> {
    Ok(
        erased_message::Entity::find_by_id((sender_id, id_hash(provider_message_id)))
            .one(db)
            .await?
            .is_some(),
    )
}

/// The query that finds a row when [`is_erased`] is true, for a statement that asks more.
pub fn erased_query(sender_id: Uuid, provider_message_id: &str) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(erased_message::Entity)
        .and_where(Expr::col(erased_message::Column::SenderId).eq(sender_id))
        .and_where(Expr::col(erased_message::Column::IdHash).eq(id_hash(provider_message_id)))
        .to_owned()
}

/// Remembers the inbound messages of `contact_id` (about to be erased), by hash.
pub async fn remember_erased(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    contact_id: Uuid,
) -> Result<()> {
    let inbound: Vec<(Option<Uuid>, Option<String>)> = message::Entity::find()
        .select_only()
        .column(message::Column::SenderId)
        .column(message::Column::ProviderMessageId)
        .filter(message::Column::ContactId.eq(contact_id))
        .filter(message::Column::Direction.eq(MessageDirection::Inbound))
        .into_tuple()
        .all(db)
        .await?;
    let now = Utc::now();
    let rows: Vec<erased_message::ActiveModel> = inbound
        .into_iter()
        .filter_map(|(sender_id, provider_id)| Some((sender_id?, provider_id?)))
        .map(|(sender_id, provider_id)| erased_message::ActiveModel {
            sender_id: Set(sender_id),
            id_hash: Set(id_hash(&provider_id)),
            workspace_id: Set(workspace_id),
            erased_at: Set(now),
        })
        .collect();
    // In slices: SQLite takes at most 32,766 bound values per statement.
    for slice in rows.chunks(1000) {
        erased_message::Entity::insert_many(slice.to_vec())
            .on_conflict(
                OnConflict::columns([
                    erased_message::Column::SenderId,
                    erased_message::Column::IdHash,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
