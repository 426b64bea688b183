//! `sendMessage`: media, a location, reply buttons, a list or a reaction, inside the 24-hour
//! window, through the same checks and delivery as text (`MessagingService::deliver`).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use waflow_entities::{CustomerAddress, enums::MessageKind, message, sender};

use super::{Begin, MessagingService, Outgoing};
use crate::{
    content::rich_content::{MessageContent, Reaction},
    error::{Error, Result, WindowClosed},
    providers::Content,
};

/// A message that is not text or a template.
#[derive(Debug, Clone)]
pub struct SendMessage {
    pub sender_id: Uuid,
    /// E.164, or a business-scoped user id.
    pub to: String,
    pub content: MessageContent,
    /// The conversation's message this one answers (Waflow's id).
    pub reply_to: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

impl MessagingService<'_> {
    /// Checks `input.content` against Meta's limits, the window and the sender's rate, then
    /// stores and sends it. Errors: VALIDATION_FAILED on the content's field, `replyTo` or
    /// `content.reaction.messageId` naming no message of this conversation;
    /// OUTSIDE_24H_WINDOW; RATE_LIMITED; and those of every send.
    pub async fn send_message(
        &self,
        workspace_id: Uuid,
        input: SendMessage,
    ) -> Result<message::Model> {
        let key = input.idempotency_key.as_deref();
        let (sender, to) = match self
            .begin_send(workspace_id, input.sender_id, &input.to, key)
            .await?
        {
            Begin::AlreadySent(message) => return Ok(message),
            Begin::Go(sender, to) => (sender, to),
        };
        let payload = serde_json::to_value(&input.content).expect("content serializes");
        let (kind, body, content) = match input.content {
            MessageContent::Rich(rich) => {
                rich.check()?;
                (rich.kind(), rich.transcript(), Content::Rich(rich))
            }
            MessageContent::Reaction { reaction } => {
                self.reaction(workspace_id, &sender, &to, reaction).await?
            }
        };
        let reply_to = self
            .replied_message(workspace_id, &sender, &to, input.reply_to, "replyTo")
            .await?;
        self.free_form_allowed(workspace_id, &sender, &to).await?;
        let outgoing = Outgoing {
            role: waflow_entities::enums::MessageRole::Agent,
            kind,
            body,
            template_id: None,
            template_params: None,
            recipient_name: None,
            content,
            payload: Some(payload),
            reply_to,
        };
        self.deliver(workspace_id, &sender, &to, outgoing, input.idempotency_key)
            .await
    }

    async fn reaction(
        &self,
        workspace_id: Uuid,
        sender: &sender::Model,
        to: &CustomerAddress,
        reaction: Reaction,
    ) -> Result<(MessageKind, String, Content)> {
        reaction.check()?;
        let field = "content.reaction.messageId";
        let message_id = self
            .replied_message(workspace_id, sender, to, Some(reaction.message_id), field)
            .await?
            .expect("a message was named");
        let content = Content::Reaction {
            message_id,
            emoji: reaction.emoji.clone(),
        };
        Ok((MessageKind::Reaction, reaction.emoji, content))
    }

    /// WhatsApp's id of message `id`, which must be one of this sender's messages with `to`
    /// that WhatsApp has (it has a provider id); refused on `field` otherwise.
    pub(super) async fn replied_message(
        &self,
        workspace_id: Uuid,
        sender: &sender::Model,
        to: &CustomerAddress,
        id: Option<Uuid>,
        field: &str,
    ) -> Result<Option<String>> {
        let Some(id) = id else { return Ok(None) };
        let contact = self.contact_of(workspace_id, to).await?;
        let found = message::Entity::find_by_id(id)
            .filter(message::Column::WorkspaceId.eq(workspace_id))
            .one(&self.services.db)
            .await?;
        let ours = found.filter(|m| {
            m.sender_id == Some(sender.id)
                && contact.as_ref().is_some_and(|c| m.contact_id == Some(c.id))
        });
        match ours.and_then(|m| m.provider_message_id) {
            Some(wamid) => Ok(Some(wamid)),
            None => Err(Error::field(
                field,
                "names no message WhatsApp delivered in this sender's conversation with `to`",
            )),
        }
    }

    /// A free-form message goes only inside the customer's 24-hour window, then within the
    /// sender's rate.
    pub(super) async fn free_form_allowed(
        &self,
        workspace_id: Uuid,
        sender: &sender::Model,
        to: &CustomerAddress,
    ) -> Result<()> {
        let status = self.session_of(workspace_id, sender.id, to).await?;
        if !status.is_open {
            return Err(Error::OutsideWindow(WindowClosed {
                closed_at: status.expires_at,
            }));
        }
        self.services
            .rate_limiter
            .acquire(sender.id, sender.messages_per_second)
            .await
    }
}
