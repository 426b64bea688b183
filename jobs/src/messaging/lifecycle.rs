//! How conversations end: by inactivity (a job armed on every message, which does nothing if a
//! later message came) or by hand. Ending builds the conversation-ended payload once, stores it
//! with the conversation and publishes it after the commit.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;
use waflow_entities::{
    assistant, contact, conversation,
    enums::{ConversationStatus, EndReason, ExtractionStatus, MessageRole},
    message, sender,
};

use super::MessagingService;
use crate::{
    error::{Error, Result},
    events::{ConversationEnded, Customer, Event, EventPayload, TranscriptEntry},
    queue::SystemJob,
};

/// The transcript as text, one line per message, labelled by who truly wrote it: `Customer:`,
/// `AI:` (an assistant's reply), `Agent:` (a person or program sending through the API, a flow
/// or a campaign) and `System:` (WhatsApp's notices, such as a number change).
pub fn transcript_text(transcript: &[TranscriptEntry]) -> String {
    transcript
        .iter()
        .filter_map(|entry| {
            let content = entry.content.as_deref()?.trim();
            let who = match entry.role {
                MessageRole::Customer => "Customer",
                MessageRole::Assistant => "AI",
                MessageRole::Agent => "Agent",
                MessageRole::System => "System",
            };
            Some(format!("{who}: {content}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A conversation's messages, oldest first (by when they were written, then stored).
pub async fn messages(
    db: &impl ConnectionTrait,
    conversation_id: Uuid,
) -> Result<Vec<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::ConversationId.eq(conversation_id))
        .order_by_asc(message::Column::CreatedAt)
        .order_by_asc(message::Column::Id)
        .all(db)
        .await?)
}

/// A conversation's messages as transcript entries, oldest first.
pub async fn transcript(
    db: &impl ConnectionTrait,
    conversation_id: Uuid,
) -> Result<Vec<TranscriptEntry>> {
    let messages = messages(db, conversation_id).await?;
    Ok(messages
        .into_iter()
        .map(|m| TranscriptEntry {
            role: m.role,
            direction: m.direction,
            content: m.body,
            kind: m.kind,
            timestamp: m.created_at,
            status: m.status,
        })
        .collect())
}

/// Builds the ended payload and marks the conversation ENDED, inside `txn`.
pub(crate) async fn end_in(
    txn: &DatabaseTransaction,
    conversation: conversation::Model,
    reason: EndReason,
    at: DateTime<Utc>,
) -> Result<(conversation::Model, ConversationEnded)> {
    let transcript = transcript(txn, conversation.id).await?;
    let contact = match conversation.contact_id {
        Some(id) => contact::Entity::find_by_id(id).one(txn).await?,
        None => None,
    };
    let sender = match conversation.sender_id {
        Some(id) => sender::Entity::find_by_id(id).one(txn).await?,
        None => None,
    };
    let evaluates = match conversation.assistant_id {
        Some(id) => assistant::Entity::find_by_id(id)
            .one(txn)
            .await?
            .is_some_and(|a| a.evaluation_enabled),
        None => false,
    };
    let extraction_status = evaluates.then_some(ExtractionStatus::Pending);
    let payload = ConversationEnded {
        conversation_id: conversation.id,
        r#type: conversation.r#type,
        status: ConversationStatus::Ended,
        end_reason: reason,
        transcript_text: transcript_text(&transcript),
        transcript,
        extracted_variables: conversation.extracted_variables.clone(),
        input_variables: conversation.input_variables.clone(),
        customer: Customer {
            phone: contact.as_ref().and_then(|c| c.phone.clone()),
            user_id: contact.as_ref().and_then(|c| c.user_id.clone()),
            name: contact.and_then(|c| c.name),
        },
        customer_identifier: conversation.customer_identifier.clone(),
        sender: sender.as_ref().map(Into::into),
        message_count: conversation.message_count,
        created_at: conversation.created_at,
        ended_at: at,
        assistant_id: conversation.assistant_id,
        extraction_status,
    };
    let mut model: conversation::ActiveModel = conversation.into();
    model.status = Set(ConversationStatus::Ended);
    model.end_reason = Set(Some(reason));
    model.ended_at = Set(Some(at));
    model.extraction_status = Set(extraction_status);
    model.ended_payload = Set(Some(
        serde_json::to_value(&payload).expect("payload serializes"),
    ));
    Ok((model.update(txn).await?, payload))
}

impl MessagingService<'_> {
    /// Announces an end: now, or, when the assistant evaluates the conversation, once the
    /// evaluation is done or its deadline has passed, whichever comes first.
    pub(crate) async fn publish_ended(&self, workspace_id: Uuid, payload: ConversationEnded) {
        if payload.extraction_status == Some(ExtractionStatus::Pending) {
            let conversation_id = payload.conversation_id;
            let jobs = &self.services.jobs;
            let scheduled = async {
                jobs.system_after(
                    SystemJob::EvaluateConversation { conversation_id },
                    std::time::Duration::ZERO,
                )
                .await?;
                jobs.system_after(
                    SystemJob::EvaluationDeadline { conversation_id },
                    self.services.evaluation_timeout,
                )
                .await
            };
            match scheduled.await {
                Ok(()) => return,
                // Without its jobs the end would never be announced: announce it as it is.
                Err(error) => {
                    tracing::error!(%error, %conversation_id, "cannot schedule the evaluation")
                }
            }
        }
        let event = Event::new(
            workspace_id,
            EventPayload::ConversationEnded(Box::new(payload)),
        );
        self.services.emit(event).await;
    }

    /// Ends an ACTIVE conversation by hand; the next message starts a new one.
    pub async fn end_conversation(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<conversation::Model> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let conversation = conversation::Entity::find_by_id(id)
            .filter(conversation::Column::WorkspaceId.eq(workspace_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("conversation"))?;
        if conversation.status != ConversationStatus::Active {
            return Err(Error::field("id", "the conversation has already ended"));
        }
        let (ended, payload) = end_in(&txn, conversation, EndReason::Manual, Utc::now()).await?;
        txn.commit().await?;
        self.publish_ended(workspace_id, payload).await;
        Ok(ended)
    }

    /// The inactivity job: ends the conversation if nothing was said for the sender's timeout.
    /// A message since the job was armed re-armed a later one, so this one does nothing.
    pub async fn end_if_inactive(&self, conversation_id: Uuid) -> Result<()> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let Some(conversation) = conversation::Entity::find_by_id(conversation_id)
            .one(&txn)
            .await?
        else {
            return Ok(());
        };
        if conversation.status != ConversationStatus::Active {
            return Ok(());
        }
        let timeout = match conversation.sender_id {
            Some(id) => sender::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .map(|s| s.inactivity_timeout_seconds),
            None => None,
        }
        .unwrap_or(crate::senders::DEFAULT_INACTIVITY_TIMEOUT_SECONDS);
        let deadline = conversation.last_message_at + Duration::seconds(timeout.into());
        let now = Utc::now();
        if deadline > now {
            return Ok(());
        }
        let workspace_id = conversation.workspace_id;
        // The conversation ended when its silence reached the timeout, not when a worker noticed.
        let (_, payload) = end_in(&txn, conversation, EndReason::Inactivity, deadline).await?;
        txn.commit().await?;
        self.publish_ended(workspace_id, payload).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waflow_entities::enums::{MessageDirection, MessageKind, MessageStatus};

    #[test]
    fn transcript_text_labels_each_message_by_its_author() {
        let entry = |role, content: Option<&str>| TranscriptEntry {
            role,
            direction: MessageDirection::Inbound,
            content: content.map(str::to_owned),
            kind: MessageKind::Text,
            timestamp: Utc::now(),
            status: MessageStatus::Received,
        };
        let transcript = [
            entry(MessageRole::Customer, Some("Hi, is it in stock?")),
            entry(MessageRole::Assistant, Some("Yes, size M too.")),
            entry(MessageRole::Customer, None),
            entry(MessageRole::Agent, Some(" Shipped today. ")),
            entry(
                MessageRole::System,
                Some("The customer changed their number."),
            ),
        ];
        assert_eq!(
            transcript_text(&transcript),
            "Customer: Hi, is it in stock?\nAI: Yes, size M too.\nAgent: Shipped today.\n\
             System: The customer changed their number."
        );
    }
}
