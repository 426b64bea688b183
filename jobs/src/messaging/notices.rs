//! WhatsApp's system notices: a customer changed their number (`user_changed_number`) or their
//! business-scoped user id changed (`user_changed_user_id`). Source: Cloud API webhooks
//! reference, "System messages"
//! (<https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/system>).
//!
//! A notice is not the customer talking: it is stored as a SYSTEM message (kind SYSTEM) so it
//! shows in the transcript, but it opens no 24-hour window, starts no `message_received` flow
//! and gets no AI reply. The contact moves to the new identity, keeping its history, opt-out
//! and attributes, and `CONTACT_IDENTITY_CHANGED` tells integrators, so their CRM can follow.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;
use waflow_entities::{
    contact, conversation,
    enums::{ConversationStatus, ConversationType, EndReason, MessageKind, MessageRole},
    message, sender,
};

use super::{
    MessagingService, dead_letters,
    ingest::{IdentityChange, SystemNotice},
    replay, store,
};
use crate::{
    error::Result,
    events::{ContactIdentityChanged, Event, EventPayload},
};

/// What a notice did to the contact.
struct Moved {
    contact: contact::Model,
    /// The contact now has the identity the notice names. False when the notice names none
    /// Waflow can read, or when another contact has it already (both are then kept).
    moved: bool,
}

impl MessagingService<'_> {
    /// Applies and records a system notice. `None`: it was delivered before or belongs to an
    /// erased contact (nothing changed), or is older than Meta redelivers: a replay must not
    /// move a contact back to a number it left, so it is kept as a dead letter only.
    pub async fn receive_notice(
        &self,
        sender: &sender::Model,
        notice: SystemNotice,
    ) -> Result<Option<message::Model>> {
        let db = &self.services.db;
        if replay::is_stale(notice.timestamp, self.services.inbound_max_age) {
            let why = "a system notice older than Meta redelivers: a replay, not applied";
            let cause = dead_letters::Cause::StaleNotice;
            dead_letters::record(self.services, Some(sender), cause, why, &notice.payload).await?;
            return Ok(None);
        }
        if replay::is_erased(db, sender.id, &notice.provider_message_id).await?
            || store::stored_message(db, sender.id, &notice.provider_message_id)
                .await?
                .is_some()
        {
            return Ok(None);
        }
        let (message, event) =
            store::retry_on_conflict(|| self.store_notice(sender, &notice)).await?;
        tracing::info!(
            sender_id = %sender.id,
            contact_id = %event.contact_id,
            change = %event.change,
            moved = event.moved,
            "a customer's identity changed"
        );
        let payload = EventPayload::ContactIdentityChanged(event);
        self.services
            .emit(Event::new(sender.workspace_id, payload))
            .await;
        Ok(Some(message))
    }

    async fn store_notice(
        &self,
        sender: &sender::Model,
        notice: &SystemNotice,
    ) -> Result<(message::Model, ContactIdentityChanged)> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let workspace_id = sender.workspace_id;
        let before = store::upsert_contact(&txn, workspace_id, &notice.customer, false)
            .await?
            .contact;
        let Moved { contact, moved } = move_contact(&txn, before.clone(), &notice.change).await?;
        let at = notice.timestamp;
        let conversation = notice_conversation(&txn, sender, contact.id, at).await?;
        let message = message::ActiveModel {
            role: Set(MessageRole::System),
            kind: Set(MessageKind::System),
            body: Set(notice.body.clone()),
            payload: Set(Some(notice.payload.clone())),
            ..store::inbound_row(
                sender,
                &conversation,
                contact.id,
                &notice.provider_message_id,
                at,
            )
        }
        .insert(&txn)
        .await?;
        let count = conversation.message_count + 1;
        let mut counted: conversation::ActiveModel = conversation.into();
        counted.message_count = Set(count);
        counted.update(&txn).await?;
        txn.commit().await?;
        let event = ContactIdentityChanged {
            contact_id: contact.id,
            sender_id: sender.id,
            message_id: message.id,
            conversation_id: message.conversation_id,
            change: notice.change.kind.clone(),
            previous_phone: before.phone,
            phone: contact.phone,
            previous_user_id: before.user_id,
            user_id: contact.user_id,
            moved,
            notice: notice.body.clone(),
        };
        Ok((message, event))
    }
}

/// Where a notice is written: the pair's latest conversation, active or ended, left as it is
/// (a notice neither keeps a conversation alive nor starts one). A customer who never wrote to
/// this sender gets a conversation that is ended as it opens, so that their first message
/// still starts one, with its `conversation.started`.
async fn notice_conversation(
    txn: &DatabaseTransaction,
    sender: &sender::Model,
    contact_id: Uuid,
    at: chrono::DateTime<Utc>,
) -> Result<conversation::Model> {
    let latest = conversation::Entity::find()
        .filter(store::whatsapp_between(sender.id, contact_id))
        .order_by_desc(conversation::Column::CreatedAt)
        .one(txn)
        .await?;
    if let Some(latest) = latest {
        return Ok(latest);
    }
    let mut closed = store::new_conversation(sender.workspace_id, ConversationType::Whatsapp, at);
    closed.sender_id = Set(Some(sender.id));
    closed.contact_id = Set(Some(contact_id));
    closed.assistant_id = Set(sender.assistant_id);
    closed.status = Set(ConversationStatus::Ended);
    closed.end_reason = Set(Some(EndReason::Inactivity));
    closed.ended_at = Set(Some(at));
    Ok(closed.insert(txn).await?)
}

/// Moves `contact` to the identity `change` names, unless another contact of the workspace
/// already has it (then the two stay apart, and the event says so).
async fn move_contact(
    txn: &DatabaseTransaction,
    contact: contact::Model,
    change: &IdentityChange,
) -> Result<Moved> {
    let new_phone = change.phone.as_ref().filter(|p| !contact.has_number(p));
    let new_user_id = change
        .user_id
        .as_ref()
        .filter(|u| contact.user_id.as_ref() != Some(*u));
    if new_phone.is_none() && new_user_id.is_none() {
        // Already there, or nothing readable to move to.
        let there = change.phone.is_some() || change.user_id.is_some();
        return Ok(Moved {
            contact,
            moved: there,
        });
    }
    let others = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(contact.workspace_id))
        .filter(contact::Column::Id.ne(contact.id));
    let identity = contact::identified_by(new_phone, new_user_id.map(String::as_str))
        .expect("one of the two is given");
    if others.filter(identity).one(txn).await?.is_some() {
        return Ok(Moved {
            contact,
            moved: false,
        });
    }
    let mut model: contact::ActiveModel = contact.into();
    if let Some(phone) = new_phone {
        model.phone = Set(Some(phone.to_string()));
        model.wa_id = Set(change.wa_id.clone());
        if change.user_id.is_none() {
            // Meta gives a new number a new user id; the old one no longer names this customer.
            model.user_id = Set(None);
        }
    }
    if let Some(user_id) = new_user_id {
        model.user_id = Set(Some(user_id.clone()));
    }
    model.updated_at = Set(Utc::now());
    Ok(Moved {
        contact: model.update(txn).await?,
        moved: true,
    })
}
