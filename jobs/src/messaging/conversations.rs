//! Reading conversations and their messages. (Their lifecycle, events and transcripts are built
//! on this.)

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;
use waflow_entities::{E164, contact, conversation, enums::ConversationStatus, message, sender};

use crate::context::{Services, find_in_workspace};
use crate::{
    error::{Error, Result},
    events::{ConversationEnded, TranscriptEntry},
    pagination::{Page, PageRequest, paginate},
};

/// Which conversations to list. Every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub sender_id: Option<Uuid>,
    pub customer_phone: Option<String>,
    pub ended_after: Option<DateTime<Utc>>,
    /// A message or the end came after this moment.
    pub updated_after: Option<DateTime<Utc>>,
}

/// Rows the export reads per query: it streams, so memory stays at one batch.
pub const EXPORT_BATCH: u64 = 200;

pub struct ConversationService<'a> {
    pub(super) services: &'a Services,
}

impl Services {
    pub fn conversations(&self) -> ConversationService<'_> {
        ConversationService { services: self }
    }
}

impl ConversationService<'_> {
    pub async fn get(&self, workspace_id: Uuid, id: Uuid) -> Result<conversation::Model> {
        find_in_workspace!(
            &self.services.db,
            conversation,
            workspace_id,
            id,
            "conversation"
        )
    }

    /// Conversations oldest first (by id, so a cursor stays valid while rows are added).
    pub async fn list(
        &self,
        workspace_id: Uuid,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> Result<Page<conversation::Model>> {
        let mut select =
            conversation::Entity::find().filter(conversation::Column::WorkspaceId.eq(workspace_id));
        if let Some(status) = filter.status {
            select = select.filter(conversation::Column::Status.eq(status));
        }
        if let Some(sender_id) = filter.sender_id {
            select = select.filter(conversation::Column::SenderId.eq(sender_id));
        }
        if let Some(phone) = filter.customer_phone {
            let phone = E164::parse(&phone).map_err(|e| Error::phone("filter.customerPhone", e))?;
            let contact = contact::Entity::find()
                .filter(contact::Column::WorkspaceId.eq(workspace_id))
                .filter(contact::is_customer(&phone))
                .one(&self.services.db)
                .await?;
            // No such contact: no conversation matches (a nil id never exists).
            select = select
                .filter(conversation::Column::ContactId.eq(contact.map_or(Uuid::nil(), |c| c.id)));
        }
        if let Some(after) = filter.ended_after {
            select = select.filter(conversation::Column::EndedAt.gt(after));
        }
        if let Some(after) = filter.updated_after {
            select = select.filter(
                Condition::any()
                    .add(conversation::Column::LastMessageAt.gt(after))
                    .add(conversation::Column::EndedAt.gt(after)),
            );
        }
        paginate(&self.services.db, select, conversation::Column::Id, page).await
    }

    /// One batch of the export: ended conversations (ended after `ended_after`) with ids after
    /// `after`, oldest first, as their stored ended payloads.
    pub async fn export_batch(
        &self,
        workspace_id: Uuid,
        ended_after: Option<DateTime<Utc>>,
        after: Option<Uuid>,
    ) -> Result<Vec<(Uuid, serde_json::Value)>> {
        let mut select = conversation::Entity::find()
            .filter(conversation::Column::WorkspaceId.eq(workspace_id))
            .filter(conversation::Column::Status.eq(ConversationStatus::Ended))
            .order_by_asc(conversation::Column::Id)
            .limit(EXPORT_BATCH);
        if let Some(ended_after) = ended_after {
            select = select.filter(conversation::Column::EndedAt.gt(ended_after));
        }
        if let Some(after) = after {
            select = select.filter(conversation::Column::Id.gt(after));
        }
        Ok(select
            .all(&self.services.db)
            .await?
            .into_iter()
            .filter_map(|c| c.ended_payload.map(|payload| (c.id, payload)))
            .collect())
    }

    pub async fn message(&self, workspace_id: Uuid, id: Uuid) -> Result<message::Model> {
        find_in_workspace!(&self.services.db, message, workspace_id, id, "message")
    }

    /// A conversation's messages, oldest first.
    pub async fn messages(
        &self,
        conversation: &conversation::Model,
        page: PageRequest,
    ) -> Result<Page<message::Model>> {
        let select =
            message::Entity::find().filter(message::Column::ConversationId.eq(conversation.id));
        paginate(&self.services.db, select, message::Column::Id, page).await
    }

    /// The transcript: as stored when the conversation ended, else as it stands.
    pub async fn transcript(
        &self,
        conversation: &conversation::Model,
    ) -> Result<Vec<TranscriptEntry>> {
        if let Some(Ok(payload)) = conversation
            .ended_payload
            .as_ref()
            .map(|ended| serde_json::from_value::<ConversationEnded>(ended.clone()))
        {
            return Ok(payload.transcript);
        }
        crate::messaging::lifecycle::transcript(&self.services.db, conversation.id).await
    }

    pub async fn contact(
        &self,
        conversation: &conversation::Model,
    ) -> Result<Option<contact::Model>> {
        match conversation.contact_id {
            Some(id) => Ok(contact::Entity::find_by_id(id)
                .one(&self.services.db)
                .await?),
            None => Ok(None),
        }
    }

    pub async fn sender(
        &self,
        conversation: &conversation::Model,
    ) -> Result<Option<sender::Model>> {
        match conversation.sender_id {
            Some(id) => Ok(sender::Entity::find_by_id(id)
                .one(&self.services.db)
                .await?),
            None => Ok(None),
        }
    }
}
