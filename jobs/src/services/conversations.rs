//! Reading conversations and their messages. (Their lifecycle, events and transcripts are built
//! on this.)

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use waflow_entities::{contact, conversation, message, sender};

use super::{Services, find_in_workspace};
use crate::{
    error::Result,
    events::{ConversationEnded, TranscriptEntry},
    pagination::{Page, PageRequest, paginate},
};

pub struct ConversationService<'a> {
    pub(super) services: &'a Services,
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
