//! The writes that sending and receiving share: contacts upserted by phone, the 24-hour window,
//! the active conversation of a (sender, contact) pair, and conversation counters. Everything
//! here runs inside the caller's transaction.
//!
//! Uniqueness (one contact per phone, one ACTIVE conversation per pair, one message per provider
//! id) is enforced by the database; a transaction that loses a race fails with a unique
//! violation and is retried whole by [`retry_on_conflict`].

use std::future::Future;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, Set,
    sea_query::OnConflict,
};
use uuid::Uuid;
use waflow_entities::{
    E164, contact, contact_window, conversation,
    enums::{ConversationStatus, ConversationType, EndReason},
    sender,
};

use crate::{
    error::{Error, Result},
    events::ConversationEnded,
};

/// Runs `attempt` again (up to three times) when it failed on a unique constraint: another
/// request created the same contact or conversation at the same moment, and a fresh
/// transaction will now find it.
pub async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(Error::Database(e)) if tries < 2 && is_unique_violation(&e) => tries += 1,
            other => return other,
        }
    }
}

pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// The customer with `phone` (in any of its forms: `E164::equivalents`), created when new.
/// A name fills an empty one; `overwrite_name` replaces a stored one (a WhatsApp profile name
/// is the customer's own choice). `wa_id`: the id WhatsApp gave, kept to send to.
pub async fn upsert_contact(
    txn: &DatabaseTransaction,
    workspace_id: Uuid,
    phone: &E164,
    name: Option<&str>,
    overwrite_name: bool,
    wa_id: Option<&str>,
) -> Result<contact::Model> {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let existing = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::is_customer(phone))
        .one(txn)
        .await?;
    let now = Utc::now();
    match existing {
        Some(found) => {
            let rename = name.filter(|n| {
                (overwrite_name || found.name.is_none()) && found.name.as_deref() != Some(*n)
            });
            let new_id = wa_id.filter(|id| found.wa_id.as_deref() != Some(*id));
            if rename.is_none() && new_id.is_none() {
                return Ok(found);
            }
            let mut model: contact::ActiveModel = found.into();
            if let Some(new_name) = rename {
                model.name = Set(Some(new_name.to_owned()));
            }
            if let Some(id) = new_id {
                model.wa_id = Set(Some(id.to_owned()));
            }
            model.updated_at = Set(now);
            Ok(model.update(txn).await?)
        }
        None => Ok(contact::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            phone: Set(phone.to_string()),
            wa_id: Set(wa_id.map(str::to_owned)),
            name: Set(name.map(str::to_owned)),
            attributes: Set(serde_json::json!({})),
            opted_out: Set(false),
            opted_out_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(txn)
        .await?),
    }
}

/// Records that the contact wrote to the sender at `at`, which opens (or extends) the 24-hour
/// window. Never moves the window back for a late, out-of-order message.
pub async fn open_window(
    txn: &DatabaseTransaction,
    workspace_id: Uuid,
    contact_id: Uuid,
    sender_id: Uuid,
    at: DateTime<Utc>,
) -> Result<()> {
    let current = contact_window::Entity::find_by_id((contact_id, sender_id))
        .one(txn)
        .await?;
    match current {
        Some(window) if window.last_inbound_at >= at => {}
        Some(window) => {
            let mut model: contact_window::ActiveModel = window.into();
            model.last_inbound_at = Set(at);
            model.update(txn).await?;
        }
        None => {
            contact_window::Entity::insert(contact_window::ActiveModel {
                contact_id: Set(contact_id),
                sender_id: Set(sender_id),
                workspace_id: Set(workspace_id),
                last_inbound_at: Set(at),
            })
            .on_conflict(
                OnConflict::columns([
                    contact_window::Column::ContactId,
                    contact_window::Column::SenderId,
                ])
                .update_column(contact_window::Column::LastInboundAt)
                .to_owned(),
            )
            .exec(txn)
            .await?;
        }
    }
    Ok(())
}

/// When the contact last wrote to the sender, if ever.
pub async fn last_inbound_at(
    db: &impl sea_orm::ConnectionTrait,
    contact_id: Uuid,
    sender_id: Uuid,
) -> Result<Option<DateTime<Utc>>> {
    Ok(contact_window::Entity::find_by_id((contact_id, sender_id))
        .one(db)
        .await?
        .map(|w| w.last_inbound_at))
}

/// The conversation a message between a sender and a contact belongs to.
pub struct ActiveConversation {
    pub conversation: conversation::Model,
    /// The message opens a new conversation.
    pub started: bool,
    /// The previous conversation had fallen silent past the sender's timeout without its
    /// inactivity job having run yet; it was ended here and this is its payload, to publish.
    pub ended: Option<ConversationEnded>,
}

/// The ACTIVE WhatsApp conversation of (sender, contact), created when there is none. One that
/// has been silent longer than `timeout_seconds` is ended first: the next message after the
/// timeout starts a new conversation even if no worker has run the inactivity job.
pub async fn active_conversation(
    txn: &DatabaseTransaction,
    sender: &sender::Model,
    contact_id: Uuid,
    at: DateTime<Utc>,
) -> Result<ActiveConversation> {
    let workspace_id = sender.workspace_id;
    let timeout_seconds = sender.inactivity_timeout_seconds;
    let found = conversation::Entity::find()
        .filter(conversation::Column::SenderId.eq(sender.id))
        .filter(conversation::Column::ContactId.eq(contact_id))
        .filter(conversation::Column::Type.eq(ConversationType::Whatsapp))
        .filter(conversation::Column::Status.eq(ConversationStatus::Active))
        .one(txn)
        .await?;
    let mut ended = None;
    if let Some(conversation) = found {
        let deadline =
            conversation.last_message_at + chrono::Duration::seconds(timeout_seconds.into());
        if deadline > at {
            return Ok(ActiveConversation {
                conversation,
                started: false,
                ended: None,
            });
        }
        let (_, payload) =
            super::lifecycle::end_in(txn, conversation, EndReason::Inactivity, deadline).await?;
        ended = Some(payload);
    }
    let mut created = new_conversation(workspace_id, ConversationType::Whatsapp, at);
    created.sender_id = Set(Some(sender.id));
    created.contact_id = Set(Some(contact_id));
    created.assistant_id = Set(sender.assistant_id);
    let created = created.insert(txn).await?;
    Ok(ActiveConversation {
        conversation: created,
        started: true,
        ended,
    })
}

/// A new ACTIVE conversation with nothing said yet; the caller sets who it is between.
pub fn new_conversation(
    workspace_id: Uuid,
    r#type: ConversationType,
    at: DateTime<Utc>,
) -> conversation::ActiveModel {
    conversation::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        r#type: Set(r#type),
        status: Set(ConversationStatus::Active),
        end_reason: Set(None),
        sender_id: Set(None),
        contact_id: Set(None),
        customer_identifier: Set(None),
        assistant_id: Set(None),
        ai_enabled: Set(true),
        input_variables: Set(serde_json::json!({})),
        extracted_variables: Set(serde_json::json!({})),
        ended_payload: Set(None),
        message_count: Set(0),
        created_at: Set(at),
        last_message_at: Set(at),
        ended_at: Set(None),
        extraction_status: Set(None),
        ai_replied_through: Set(None),
        ai_reply_due_at: Set(None),
        ai_locked_until: Set(None),
        campaign_id: Set(None),
    }
}

/// Counts one more message in the conversation and moves its last activity forward.
pub async fn count_message(
    txn: &DatabaseTransaction,
    conversation: conversation::Model,
    at: DateTime<Utc>,
) -> Result<conversation::Model> {
    let last = conversation.last_message_at.max(at);
    let count = conversation.message_count + 1;
    let mut model: conversation::ActiveModel = conversation.into();
    model.message_count = Set(count);
    model.last_message_at = Set(last);
    Ok(model.update(txn).await?)
}
