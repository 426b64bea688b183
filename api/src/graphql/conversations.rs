//! Conversations between a sender and a customer, with their messages.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};
use waflow_entities::{
    conversation,
    enums::{
        ConversationStatus, ConversationType, EndReason, ExtractionStatus, MessageDirection,
        MessageKind, MessageRole, MessageStatus,
    },
};
use waflow_jobs::{Error, events, messaging::conversations as svc};

use super::{
    GqlResult, connection, messages::Message, page_request, parse_id, scope, senders::Sender,
};

pub struct Conversation(pub conversation::Model);

/// One message of a transcript.
#[derive(SimpleObject)]
pub struct TranscriptEntry {
    role: MessageRole,
    direction: MessageDirection,
    content: Option<String>,
    kind: MessageKind,
    timestamp: DateTime<Utc>,
    status: MessageStatus,
}

impl From<&events::TranscriptEntry> for TranscriptEntry {
    fn from(e: &events::TranscriptEntry) -> Self {
        Self {
            role: e.role,
            direction: e.direction,
            content: e.content.clone(),
            kind: e.kind,
            timestamp: e.timestamp,
            status: e.status,
        }
    }
}

/// Narrows `conversations`; every field given must match.
#[derive(InputObject, Default)]
pub struct ConversationFilter {
    status: Option<ConversationStatus>,
    sender_id: Option<ID>,
    /// E.164.
    customer_phone: Option<String>,
    ended_after: Option<DateTime<Utc>>,
    /// A message or the end came after this moment.
    updated_after: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct ConversationQuery;

#[Object]
impl ConversationQuery {
    /// Conversations oldest first. The cursor order is stable: pages never skip or repeat a
    /// conversation while new ones arrive, so an integrator can pull everything ended since its
    /// last pull with `filter: {status: ENDED, endedAfter}`.
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConversationFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Conversation>> {
        let (services, workspace_id) = scope(ctx)?;
        let filter = filter.unwrap_or_default();
        let filter = svc::ConversationFilter {
            status: filter.status,
            sender_id: filter
                .sender_id
                .map(|id| parse_id(&id, || Error::SenderNotFound(id.to_string())))
                .transpose()?,
            customer_phone: filter.customer_phone,
            ended_after: filter.ended_after,
            updated_after: filter.updated_after,
        };
        let page = services
            .conversations()
            .list(workspace_id, filter, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |c| c.id, Conversation))
    }

    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Conversation> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("conversation"))?;
        services
            .conversations()
            .get(workspace_id, id)
            .await
            .gql()
            .map(Conversation)
    }
}

#[derive(Default)]
pub struct ConversationMutation;

#[Object]
impl ConversationMutation {
    /// Ends an active conversation now (end reason MANUAL); the next message starts a new one.
    async fn end_conversation(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Conversation> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("conversation"))?;
        services
            .messaging()
            .end_conversation(workspace_id, id)
            .await
            .gql()
            .map(Conversation)
    }

    /// Stops (false) or resumes (true) the assistant's replies in one conversation, so a human
    /// can take over. Resuming does not answer what the customer said meanwhile.
    async fn set_conversation_ai_enabled(
        &self,
        ctx: &Context<'_>,
        id: ID,
        enabled: bool,
    ) -> async_graphql::Result<Conversation> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("conversation"))?;
        services
            .ai_replies()
            .set_ai_enabled(workspace_id, id, enabled)
            .await
            .gql()
            .map(Conversation)
    }
}

#[Object]
impl Conversation {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn r#type(&self) -> ConversationType {
        self.0.r#type
    }
    async fn status(&self) -> ConversationStatus {
        self.0.status
    }
    async fn end_reason(&self) -> Option<EndReason> {
        self.0.end_reason
    }
    async fn customer_phone(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let (services, _) = scope(ctx)?;
        Ok(services
            .conversations()
            .contact(&self.0)
            .await
            .gql()?
            .and_then(|c| c.phone))
    }
    /// The Click-to-WhatsApp ad (or post) that brought the customer: Meta's `referral` object
    /// (`source_url`, `source_id`, `source_type`, `headline`, `body`, `ctwa_clid`, media), from
    /// the first message that carried one.
    async fn referral(&self) -> Option<Json<serde_json::Value>> {
        self.0.referral.clone().map(Json)
    }
    async fn customer_name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let (services, _) = scope(ctx)?;
        Ok(services
            .conversations()
            .contact(&self.0)
            .await
            .gql()?
            .and_then(|c| c.name))
    }
    async fn sender(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Sender>> {
        let (services, _) = scope(ctx)?;
        Ok(services
            .conversations()
            .sender(&self.0)
            .await
            .gql()?
            .map(Sender))
    }
    /// The customer identifier of an API conversation (phone, email, CRM id).
    async fn customer_identifier(&self) -> Option<&str> {
        self.0.customer_identifier.as_deref()
    }
    /// The assistant answering in this conversation, if any.
    async fn assistant(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::assistants::Assistant>> {
        super::assistants::Assistant::load(ctx, self.0.assistant_id).await
    }
    /// Whether the assistant answers in this conversation (false: a human took over).
    async fn ai_enabled(&self) -> bool {
        self.0.ai_enabled
    }
    /// The campaign this conversation answered, when the customer replied to one.
    async fn campaign_id(&self) -> Option<ID> {
        self.0.campaign_id.map(Into::into)
    }
    async fn input_variables(&self) -> Json<serde_json::Value> {
        Json(self.0.input_variables.clone())
    }
    /// Filled by the assistant's evaluation when the conversation ends; `{}` until then.
    async fn extracted_variables(&self) -> Json<serde_json::Value> {
        Json(self.0.extracted_variables.clone())
    }
    /// The evaluation's state; null when the conversation's assistant evaluates nothing.
    async fn extraction_status(&self) -> Option<ExtractionStatus> {
        self.0.extraction_status
    }
    /// Why the evaluation FAILED (the model's error, an answer that did not fit the fields, a
    /// deleted assistant); null unless it failed.
    async fn extraction_error(&self) -> Option<&str> {
        self.0.extraction_error.as_deref()
    }
    /// Every message, oldest first.
    async fn transcript(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TranscriptEntry>> {
        let (services, _) = scope(ctx)?;
        let entries = services.conversations().transcript(&self.0).await.gql()?;
        Ok(entries.iter().map(TranscriptEntry::from).collect())
    }
    /// One line per message: `Customer: …` or `AI: …`.
    async fn transcript_text(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let (services, _) = scope(ctx)?;
        let entries = services.conversations().transcript(&self.0).await.gql()?;
        Ok(waflow_jobs::messaging::lifecycle::transcript_text(&entries))
    }
    async fn message_count(&self) -> i32 {
        self.0.message_count
    }
    /// Oldest first.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Message>> {
        let (services, _) = scope(ctx)?;
        let page = services
            .conversations()
            .messages(&self.0, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |m| m.id, Message))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn last_message_at(&self) -> DateTime<Utc> {
        self.0.last_message_at
    }
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
}
