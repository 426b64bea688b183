//! Answering customers with an assistant: `generateAiReply` for any customer identifier (an API
//! conversation), and auto-reply to WhatsApp messages on a sender that names an assistant.
//!
//! Auto-reply is two pieces of state on the conversation and one job. Each inbound message
//! pushes `ai_reply_due_at` a debounce later and schedules the job; the job does nothing until
//! the burst is over, then takes a lease on the conversation (`ai_locked_until`), answers every
//! customer message after `ai_replied_through` at once, and moves that mark. With many workers
//! the lease makes replies one at a time, and the mark makes each message answered once.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::Expr,
};
use serde_json::Value;
use uuid::Uuid;
use waflow_entities::{
    assistant, conversation,
    enums::{
        AssistantProvider, ConversationStatus, ConversationType, MessageDirection, MessageKind,
        MessageRole, MessageStatus,
    },
    message, sender,
};

use crate::{
    ai::{self, ReplyRequest, prompt},
    error::{Error, Result},
    messaging::{MAX_TEXT_CHARS, SendText, lifecycle, store},
    queue::SystemJob,
    validation::Problems,
};
use crate::{
    context::{Services, find_in_workspace},
    senders::DEFAULT_INACTIVITY_TIMEOUT_SECONDS,
};

/// Longest customer identifier (a phone, an email, a CRM id).
pub const MAX_IDENTIFIER_CHARS: usize = 200;
/// How soon a reply that found the conversation locked looks again.
const LOCKED_RETRY: Duration = Duration::from_secs(1);

/// `generateAiReply`'s input.
#[derive(Debug, Clone)]
pub struct GenerateAiReply {
    pub assistant_id: Uuid,
    pub customer_identifier: String,
    pub message: String,
    /// Merged into the conversation's input variables.
    pub variables: Option<Value>,
}

/// What `generateAiReply` did.
#[derive(Debug, Clone)]
pub struct AiReply {
    /// `None` when AI is disabled on the conversation, or a scripted assistant had no answer.
    pub reply: Option<String>,
    pub conversation: conversation::Model,
    pub customer_message: message::Model,
    pub reply_message: Option<message::Model>,
    pub ai_disabled: bool,
}

pub struct AiReplyService<'a> {
    pub(super) services: &'a Services,
}

impl Services {
    pub fn ai_replies(&self) -> AiReplyService<'_> {
        AiReplyService { services: self }
    }
}

fn check(input: &GenerateAiReply) -> Result<()> {
    let mut problems = Problems::new();
    problems.text(
        "customerIdentifier",
        &input.customer_identifier,
        MAX_IDENTIFIER_CHARS,
    );
    problems.check(
        !input.message.trim().is_empty(),
        "message",
        "must not be empty",
    );
    if let Some(variables) = &input.variables {
        problems.check(
            variables.is_object() || variables.is_null(),
            "variables",
            "must be a JSON object",
        );
    }
    problems.into_result()?;
    let length = input.message.chars().count();
    if length > MAX_TEXT_CHARS {
        return Err(Error::MessageTooLong { length });
    }
    Ok(())
}

/// A message of an API conversation: no sender, no contact, nothing to deliver.
fn api_message(
    conversation: &conversation::Model,
    direction: MessageDirection,
    role: MessageRole,
    status: MessageStatus,
    text: &str,
) -> message::ActiveModel {
    let now = Utc::now();
    message::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(conversation.workspace_id),
        conversation_id: Set(conversation.id),
        sender_id: Set(None),
        contact_id: Set(None),
        direction: Set(direction),
        role: Set(role),
        kind: Set(MessageKind::Text),
        body: Set(Some(text.to_owned())),
        template_id: Set(None),
        template_params: Set(None),
        provider_message_id: Set(None),
        status: Set(status),
        error_code: Set(None),
        error_message: Set(None),
        idempotency_key: Set(None),
        payload: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

impl AiReplyService<'_> {
    /// Finds or starts the customer's API conversation with the assistant, stores the message,
    /// and answers it. The message is stored even when the model then fails.
    pub async fn generate(&self, workspace_id: Uuid, input: GenerateAiReply) -> Result<AiReply> {
        check(&input)?;
        let assistant = self
            .services
            .assistants()
            .get(workspace_id, input.assistant_id)
            .await?;
        let (conversation, customer_message) =
            store::retry_on_conflict(|| self.store_customer_message(&assistant, &input)).await?;
        self.services
            .jobs
            .arm_inactivity(conversation.id, DEFAULT_INACTIVITY_TIMEOUT_SECONDS)
            .await?;
        let mut answer = AiReply {
            reply: None,
            ai_disabled: !conversation.ai_enabled,
            conversation,
            customer_message,
            reply_message: None,
        };
        if answer.ai_disabled {
            return Ok(answer);
        }
        let messages = lifecycle::messages(&self.services.db, answer.conversation.id).await?;
        let variables = prompt::variables(&answer.conversation, None);
        let request = ReplyRequest {
            variables: &variables,
            history: prompt::history(&messages),
            unanswered: &input.message,
        };
        let Some(text) = ai::reply(self.services, &assistant, request).await? else {
            return Ok(answer);
        };
        let (conversation, reply_message) = self.store_reply(answer.conversation, &text).await?;
        answer.conversation = conversation;
        answer.reply = Some(text);
        answer.reply_message = Some(reply_message);
        Ok(answer)
    }

    async fn store_customer_message(
        &self,
        assistant: &assistant::Model,
        input: &GenerateAiReply,
    ) -> Result<(conversation::Model, message::Model)> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let identifier = input.customer_identifier.trim();
        let found = conversation::Entity::find()
            .filter(conversation::Column::WorkspaceId.eq(assistant.workspace_id))
            .filter(conversation::Column::AssistantId.eq(assistant.id))
            .filter(conversation::Column::CustomerIdentifier.eq(identifier))
            .filter(conversation::Column::Type.eq(ConversationType::Api))
            .filter(conversation::Column::Status.eq(ConversationStatus::Active))
            .one(&txn)
            .await?;
        let given = match &input.variables {
            Some(Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let conversation = match found {
            Some(found) if given.is_empty() => found,
            Some(found) => {
                let mut merged = match &found.input_variables {
                    Value::Object(map) => map.clone(),
                    _ => serde_json::Map::new(),
                };
                merged.extend(given);
                let mut model: conversation::ActiveModel = found.into();
                model.input_variables = Set(Value::Object(merged));
                model.update(&txn).await?
            }
            None => {
                let mut model = store::new_conversation(
                    assistant.workspace_id,
                    ConversationType::Api,
                    Utc::now(),
                );
                model.assistant_id = Set(Some(assistant.id));
                model.customer_identifier = Set(Some(identifier.to_owned()));
                model.input_variables = Set(Value::Object(given));
                model.insert(&txn).await?
            }
        };
        let message = api_message(
            &conversation,
            MessageDirection::Inbound,
            MessageRole::Customer,
            MessageStatus::Received,
            &input.message,
        )
        .insert(&txn)
        .await?;
        let conversation = store::count_message(&txn, conversation, message.created_at).await?;
        txn.commit().await?;
        Ok((conversation, message))
    }

    async fn store_reply(
        &self,
        conversation: conversation::Model,
        text: &str,
    ) -> Result<(conversation::Model, message::Model)> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        // The caller reads the reply in the response: it is delivered.
        let message = api_message(
            &conversation,
            MessageDirection::Outbound,
            MessageRole::Assistant,
            MessageStatus::Delivered,
            text,
        )
        .insert(&txn)
        .await?;
        // Re-read: another call may have counted a message meanwhile.
        let current = conversation::Entity::find_by_id(conversation.id)
            .one(&txn)
            .await?
            .unwrap_or(conversation);
        let conversation = store::count_message(&txn, current, message.created_at).await?;
        txn.commit().await?;
        Ok((conversation, message))
    }

    /// Stops (or resumes) the assistant's replies on one conversation, so a human can take over.
    /// Resuming does not answer what was said meanwhile: the human did.
    pub async fn set_ai_enabled(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        enabled: bool,
    ) -> Result<conversation::Model> {
        let db = &self.services.db;
        let conversation = find_in_workspace!(db, conversation, workspace_id, id, "conversation")?;
        if conversation.ai_enabled == enabled {
            return Ok(conversation);
        }
        let latest_inbound = message::Entity::find()
            .filter(message::Column::ConversationId.eq(id))
            .filter(message::Column::Direction.eq(MessageDirection::Inbound))
            .order_by_desc(message::Column::Id)
            .one(db)
            .await?;
        let mut model: conversation::ActiveModel = conversation.into();
        model.ai_enabled = Set(enabled);
        if enabled && let Some(latest) = latest_inbound {
            model.ai_replied_through = Set(Some(latest.id));
        }
        Ok(model.update(db).await?)
    }
}

/// Auto-reply on WhatsApp.
impl AiReplyService<'_> {
    /// After an inbound WhatsApp message is stored: when the sender has an assistant and the
    /// conversation lets it answer, the reply is due once the burst is over.
    pub(crate) async fn schedule(
        &self,
        sender: &sender::Model,
        conversation: &conversation::Model,
    ) -> Result<()> {
        let Some(assistant_id) = sender.assistant_id else {
            return Ok(());
        };
        if !conversation.ai_enabled {
            return Ok(());
        }
        let db = &self.services.db;
        let Some(assistant) = assistant::Entity::find_by_id(assistant_id).one(db).await? else {
            return Ok(());
        };
        let debounce = ai::reply_debounce(&assistant);
        let due = Utc::now() + debounce;
        conversation::Entity::update_many()
            .col_expr(conversation::Column::AiReplyDueAt, Expr::value(due))
            .filter(conversation::Column::Id.eq(conversation.id))
            .exec(db)
            .await?;
        self.later(conversation.id, debounce).await
    }

    async fn later(&self, conversation_id: Uuid, delay: Duration) -> Result<()> {
        self.services
            .jobs
            .system_after(SystemJob::AutoReply { conversation_id }, delay)
            .await
    }

    /// The auto-reply job.
    pub async fn auto_reply(&self, conversation_id: Uuid) -> Result<()> {
        let Some(conversation) = self.answerable(conversation_id).await? else {
            return Ok(());
        };
        let now = Utc::now();
        if let Some(due) = conversation.ai_reply_due_at
            && due > now
        {
            // A later message of the burst moved the reply; this job may have come early.
            return self
                .later(conversation_id, (due - now).to_std().unwrap_or_default())
                .await;
        }
        let Some(sender) = self.services.conversations().sender(&conversation).await? else {
            return Ok(());
        };
        let Some(assistant) = self.assistant_of(&sender).await? else {
            return Ok(());
        };
        if !self.lock(conversation_id, &assistant).await? {
            return self.later(conversation_id, LOCKED_RETRY).await;
        }
        let outcome = self
            .answer_unanswered(conversation_id, &sender, &assistant)
            .await;
        let unlocked = conversation::Entity::update_many()
            .col_expr(
                conversation::Column::AiLockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .filter(conversation::Column::Id.eq(conversation_id))
            .exec(&self.services.db)
            .await;
        outcome?;
        unlocked?;
        Ok(())
    }

    /// The conversation, if it is one the assistant may still answer in.
    async fn answerable(&self, conversation_id: Uuid) -> Result<Option<conversation::Model>> {
        Ok(conversation::Entity::find_by_id(conversation_id)
            .one(&self.services.db)
            .await?
            .filter(|c| c.status == ConversationStatus::Active && c.ai_enabled))
    }

    async fn assistant_of(&self, sender: &sender::Model) -> Result<Option<assistant::Model>> {
        match sender.assistant_id {
            Some(id) => Ok(assistant::Entity::find_by_id(id)
                .filter(assistant::Column::WorkspaceId.eq(sender.workspace_id))
                .one(&self.services.db)
                .await?),
            None => Ok(None),
        }
    }

    /// Takes the conversation's reply lease: true for one worker at a time. The lease outlasts
    /// the slowest model call, and expires if its holder dies.
    async fn lock(&self, conversation_id: Uuid, assistant: &assistant::Model) -> Result<bool> {
        let now = Utc::now();
        let lease =
            ai::request_timeout(assistant) * ai::chat::MAX_ATTEMPTS + Duration::from_secs(60);
        let until = now + lease;
        let taken = conversation::Entity::update_many()
            .col_expr(conversation::Column::AiLockedUntil, Expr::value(until))
            .filter(conversation::Column::Id.eq(conversation_id))
            .filter(
                Condition::any()
                    .add(conversation::Column::AiLockedUntil.is_null())
                    .add(conversation::Column::AiLockedUntil.lt(now)),
            )
            .exec(&self.services.db)
            .await?
            .rows_affected;
        Ok(taken == 1)
    }

    /// Answers, in one reply, every customer message not answered yet. Runs under the lease.
    async fn answer_unanswered(
        &self,
        conversation_id: Uuid,
        sender: &sender::Model,
        assistant: &assistant::Model,
    ) -> Result<()> {
        let db = &self.services.db;
        let Some(conversation) = self.answerable(conversation_id).await? else {
            return Ok(());
        };
        let Some(contact) = self.services.conversations().contact(&conversation).await? else {
            return Ok(());
        };
        // The customer's messages after the replied-through mark are the ones to answer. What
        // the customer wrote while an earlier reply was being made comes after that reply: the
        // prompt ends with the messages to answer.
        let (unanswered, answered): (Vec<message::Model>, Vec<message::Model>) =
            lifecycle::messages(db, conversation_id)
                .await?
                .into_iter()
                .partition(|m| {
                    // WhatsApp's notices (a number change) are context, not questions.
                    m.direction == MessageDirection::Inbound
                        && m.role == MessageRole::Customer
                        && conversation.ai_replied_through.is_none_or(|t| m.id > t)
                });
        let Some(newest) = unanswered.iter().map(|m| m.id).max() else {
            return Ok(());
        };
        if contact.opted_out {
            return self
                .answered_through(&conversation, newest, assistant)
                .await;
        }
        let text: Vec<&str> = unanswered
            .iter()
            .filter_map(|m| m.body.as_deref())
            .collect();
        let text = text.join("\n");
        let variables = prompt::variables(&conversation, Some(&contact));
        let mut history = prompt::history(&answered);
        history.extend(prompt::history(&unanswered));
        let request = ReplyRequest {
            variables: &variables,
            history,
            unanswered: &text,
        };
        let reply = match ai::reply(self.services, assistant, request).await {
            Ok(reply) => reply,
            Err(error) => match assistant.fallback_reply.clone() {
                Some(fallback) if assistant.provider == AssistantProvider::OpenaiCompatible => {
                    tracing::warn!(%conversation_id, %error, "the model failed; sending the fallback reply");
                    Some(fallback)
                }
                // Left unanswered: the customer's next message is answered with these.
                _ => return Err(error),
            },
        };
        let Some(reply) = reply else {
            return self
                .answered_through(&conversation, newest, assistant)
                .await;
        };
        let send = SendText {
            reply_to: None,
            sender_id: sender.id,
            to: contact.address(),
            text: reply,
            // A retried job finds the reply already sent instead of sending it twice.
            idempotency_key: Some(format!("ai-reply:{newest}")),
        };
        let sent = self
            .services
            .messaging()
            .send_text_as(sender.workspace_id, send, MessageRole::Assistant)
            .await;
        match sent {
            Err(Error::RateLimited {
                retry_after_seconds,
            }) => {
                self.later(conversation_id, Duration::from_secs(retry_after_seconds))
                    .await
            }
            Err(error) => {
                // The send's rules said no (window, sender offline) or the provider refused
                // (the message is stored FAILED): answering again would say the same.
                self.answered_through(&conversation, newest, assistant)
                    .await?;
                Err(error)
            }
            Ok(_) => {
                self.answered_through(&conversation, newest, assistant)
                    .await
            }
        }
    }

    async fn answered_through(
        &self,
        conversation: &conversation::Model,
        message_id: Uuid,
        assistant: &assistant::Model,
    ) -> Result<()> {
        conversation::Entity::update_many()
            .col_expr(
                conversation::Column::AiRepliedThrough,
                Expr::value(message_id),
            )
            // The assistant answering is the one that evaluates the conversation at its end.
            .col_expr(conversation::Column::AssistantId, Expr::value(assistant.id))
            .filter(conversation::Column::Id.eq(conversation.id))
            .exec(&self.services.db)
            .await?;
        Ok(())
    }
}
