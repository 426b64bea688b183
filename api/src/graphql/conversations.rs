//! Conversations between a sender and a customer, with their messages.

use async_graphql::{Context, ID, Object, connection::Connection};
use chrono::{DateTime, Utc};
use waflow_entities::{
    conversation,
    enums::{ConversationStatus, ConversationType, EndReason},
};

use super::{GqlResult, connection, messages::Message, page_request, scope, senders::Sender};

pub struct Conversation(pub conversation::Model);

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
            .map(|c| c.phone))
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
