//! Delivery statuses: what the provider reports about the messages Waflow sent (sent,
//! delivered, read, failed), applied in order and announced as `MessageStatusUpdated`. A real
//! webhook (`webhook`) and the sandbox provider both end here.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;
use waflow_entities::{
    enums::{MessageDirection, MessageStatus},
    message,
};

use super::MessagingService;
use crate::error::Result;
use crate::events::{Event, EventPayload, MessageStatusUpdated};

/// A delivery status reported by the provider for a message we sent.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub provider_message_id: String,
    pub status: MessageStatus,
    pub timestamp: DateTime<Utc>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Statuses only move forward: sent, delivered, read. A failure counts unless the message was
/// already delivered or read (then the report is stale).
fn rank(status: MessageStatus) -> u8 {
    match status {
        MessageStatus::Received | MessageStatus::Queued => 0,
        MessageStatus::Sent => 1,
        MessageStatus::Failed => 1,
        MessageStatus::Delivered => 2,
        MessageStatus::Read => 3,
    }
}

impl MessagingService<'_> {
    /// Applies a provider's status report to the message it names. Unknown ids are ignored
    /// (`None`), and a status never moves a message backwards.
    pub async fn apply_status(
        &self,
        sender_id: Uuid,
        update: StatusUpdate,
    ) -> Result<Option<message::Model>> {
        let db = &self.services.db;
        let Some(found) = message::Entity::find()
            .filter(message::Column::SenderId.eq(sender_id))
            .filter(message::Column::ProviderMessageId.eq(&update.provider_message_id))
            .filter(message::Column::Direction.eq(MessageDirection::Outbound))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        let moves_forward = match update.status {
            MessageStatus::Failed => {
                rank(found.status) < rank(MessageStatus::Delivered)
                    && found.status != MessageStatus::Failed
            }
            status => rank(status) > rank(found.status),
        };
        if !moves_forward {
            return Ok(Some(found));
        }
        let sender_label = found.sender_id.map(|s| s.to_string()).unwrap_or_default();
        let mut model: message::ActiveModel = found.into();
        model.status = Set(update.status);
        if update.status == MessageStatus::Failed {
            // Refused after it was accepted (an undeliverable number, a marketing limit).
            metrics::counter!("waflow_messages_failed_total", "sender" => sender_label)
                .increment(1);
            model.error_code = Set(update.error_code);
            model.error_message = Set(update.error_message);
        }
        model.updated_at = Set(Utc::now());
        let message = model.update(db).await?;
        self.publish_status(&message).await;
        Ok(Some(message))
    }

    pub(crate) async fn publish_status(&self, message: &message::Model) {
        let update = MessageStatusUpdated {
            message_id: message.id,
            conversation_id: message.conversation_id,
            sender_id: message.sender_id,
            status: message.status,
            error_code: message.error_code.clone(),
        };
        let event = Event::new(
            message.workspace_id,
            EventPayload::MessageStatusUpdated(update),
        );
        self.services.emit(event).await;
    }

    /// The sandbox provider's delivery report for one of its messages.
    pub async fn advance_sandbox_message(
        &self,
        message_id: Uuid,
        status: MessageStatus,
    ) -> Result<()> {
        let message = message::Entity::find_by_id(message_id)
            .one(&self.services.db)
            .await?
            .ok_or(crate::Error::NotFound("message"))?;
        let (Some(sender_id), Some(provider_message_id)) =
            (message.sender_id, message.provider_message_id)
        else {
            return Ok(());
        };
        let update = StatusUpdate {
            provider_message_id,
            status,
            timestamp: Utc::now(),
            error_code: None,
            error_message: None,
        };
        self.apply_status(sender_id, update).await.map(|_| ())
    }
}
