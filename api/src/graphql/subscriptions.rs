//! Subscriptions: what happens, as it happens, to the caller's workspace only.

use async_graphql::{Context, ID, Json, SimpleObject, Subscription, futures_util::Stream};
use chrono::{DateTime, Utc};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;
use waflow_entities::enums::{
    ConversationStatus, ConversationType, EndReason, ExtractionStatus, MessageKind, MessageStatus,
    QualityRating, RunStatus, StepStatus,
};
use waflow_jobs::{
    Error, Services,
    events::{self, EventPayload},
};

use super::{conversations::TranscriptEntry, parse_id, scope, to_gql};

#[derive(SimpleObject)]
pub struct SenderSummary {
    id: ID,
    phone_number: String,
    display_name: String,
}

impl From<&events::SenderRef> for SenderSummary {
    fn from(s: &events::SenderRef) -> Self {
        Self {
            id: s.id.into(),
            phone_number: s.phone_number.clone(),
            display_name: s.display_name.clone(),
        }
    }
}

/// A customer's message arrived.
#[derive(SimpleObject)]
pub struct MessageReceivedEvent {
    /// E.164; null for a customer who hides their number behind a username.
    customer_phone: Option<String>,
    /// Meta's business-scoped user id, when WhatsApp gave it.
    customer_user_id: Option<String>,
    customer_username: Option<String>,
    customer_name: Option<String>,
    /// What a person reads: the text, a caption, a button's title, an order's items (see the
    /// README, "What Waflow receives").
    message: Option<String>,
    kind: MessageKind,
    /// The structured content, as `Message.payload`.
    payload: Option<Json<serde_json::Value>>,
    /// The Click-to-WhatsApp ad the message came from (Meta's `referral` object).
    referral: Option<Json<serde_json::Value>>,
    message_id: ID,
    sender_id: ID,
    conversation_id: ID,
    timestamp: DateTime<Utc>,
}

/// WhatsApp said a customer's number (or business-scoped user id) changed. `moved` is false
/// when the new number already belonged to another contact: both are kept, to merge by hand.
#[derive(SimpleObject)]
pub struct ContactIdentityChangedEvent {
    contact_id: ID,
    sender_id: ID,
    /// The SYSTEM message that records the notice in the conversation.
    message_id: ID,
    conversation_id: ID,
    /// Meta's `system.type`: `user_changed_number` or `user_changed_user_id`.
    change: String,
    previous_phone: Option<String>,
    phone: Option<String>,
    previous_user_id: Option<String>,
    user_id: Option<String>,
    moved: bool,
    /// WhatsApp's text of the notice.
    notice: Option<String>,
}

impl From<&events::ContactIdentityChanged> for ContactIdentityChangedEvent {
    fn from(c: &events::ContactIdentityChanged) -> Self {
        Self {
            contact_id: c.contact_id.into(),
            sender_id: c.sender_id.into(),
            message_id: c.message_id.into(),
            conversation_id: c.conversation_id.into(),
            change: c.change.clone(),
            previous_phone: c.previous_phone.clone(),
            phone: c.phone.clone(),
            previous_user_id: c.previous_user_id.clone(),
            user_id: c.user_id.clone(),
            moved: c.moved,
            notice: c.notice.clone(),
        }
    }
}

/// A customer's first message opened a new conversation.
#[derive(SimpleObject)]
pub struct ConversationStartedEvent {
    customer_phone: Option<String>,
    customer_user_id: Option<String>,
    customer_name: Option<String>,
    first_message: Option<String>,
    /// The ad that brought the customer, when the first message came from one.
    referral: Option<Json<serde_json::Value>>,
    sender: SenderSummary,
    conversation_id: ID,
}

/// An outbound message moved on (SENT, DELIVERED, READ) or FAILED.
#[derive(SimpleObject)]
pub struct MessageStatusUpdatedEvent {
    message_id: ID,
    conversation_id: ID,
    sender_id: Option<ID>,
    status: MessageStatus,
    error_code: Option<String>,
}

#[derive(SimpleObject)]
pub struct CustomerSummary {
    phone: Option<String>,
    /// Meta's business-scoped user id, when one is known.
    user_id: Option<String>,
    name: Option<String>,
}

/// A conversation ended, with everything said in it.
#[derive(SimpleObject)]
pub struct ConversationEndedEvent {
    conversation_id: ID,
    r#type: ConversationType,
    status: ConversationStatus,
    end_reason: EndReason,
    transcript: Vec<TranscriptEntry>,
    /// One line per message: `Customer: …` or `AI: …`.
    transcript_text: String,
    extracted_variables: Json<serde_json::Value>,
    input_variables: Json<serde_json::Value>,
    customer: CustomerSummary,
    customer_identifier: Option<String>,
    sender: Option<SenderSummary>,
    message_count: i32,
    created_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    /// The assistant that answered in the conversation, if one did.
    assistant_id: Option<ID>,
    /// COMPLETED, FAILED or TIMED_OUT when the assistant evaluates conversations, else null.
    extraction_status: Option<ExtractionStatus>,
}

impl From<&events::ConversationEnded> for ConversationEndedEvent {
    fn from(e: &events::ConversationEnded) -> Self {
        Self {
            conversation_id: e.conversation_id.into(),
            r#type: e.r#type,
            status: e.status,
            end_reason: e.end_reason,
            transcript: e.transcript.iter().map(Into::into).collect(),
            transcript_text: e.transcript_text.clone(),
            extracted_variables: Json(e.extracted_variables.clone()),
            input_variables: Json(e.input_variables.clone()),
            customer: CustomerSummary {
                phone: e.customer.phone.clone(),
                user_id: e.customer.user_id.clone(),
                name: e.customer.name.clone(),
            },
            customer_identifier: e.customer_identifier.clone(),
            sender: e.sender.as_ref().map(Into::into),
            message_count: e.message_count,
            created_at: e.created_at,
            ended_at: e.ended_at,
            assistant_id: e.assistant_id.map(Into::into),
            extraction_status: e.extraction_status,
        }
    }
}

/// A flow run changed state, or one of its steps started or finished.
#[derive(SimpleObject)]
pub struct FlowRunUpdatedEvent {
    run_id: ID,
    flow_id: ID,
    status: RunStatus,
    error: Option<String>,
    /// The step that started or finished, if that is the change.
    step_id: Option<String>,
    step_status: Option<StepStatus>,
}

/// A sender's quality rating changed.
#[derive(SimpleObject)]
pub struct SenderQualityChangedEvent {
    sender: SenderSummary,
    previous: QualityRating,
    current: QualityRating,
}

/// The workspace's events (only those about `sender`, when given) that `pick` maps to `T`. A
/// subscriber that falls too far behind gets an error and the stream ends (the client
/// resubscribes); it never slows the publisher.
pub(crate) fn workspace_events<T: Send + 'static>(
    services: &Services,
    workspace_id: Uuid,
    sender: Option<Uuid>,
    pick: impl Fn(&EventPayload) -> Option<T> + Send + Sync + 'static,
) -> impl Stream<Item = async_graphql::Result<T>> + Send + 'static {
    let receiver = services.events.subscribe(workspace_id, sender);
    let pick = std::sync::Arc::new(pick);
    async_graphql::futures_util::stream::unfold(Some(receiver), move |state| {
        let pick = pick.clone();
        async move {
            let mut receiver = state?;
            loop {
                match receiver.recv().await {
                    Ok(event) if event.workspace_id == workspace_id => {
                        if let Some(item) = pick(&event.payload) {
                            return Some((Ok(item), Some(receiver)));
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        let error = to_gql(Error::Internal(format!(
                            "this subscription fell {missed} events behind and was stopped; subscribe again"
                        )));
                        return Some((Err(error), None));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    })
}

fn optional_id(
    id: Option<ID>,
    missing: impl Fn(String) -> Error,
) -> async_graphql::Result<Option<Uuid>> {
    id.map(|id| parse_id(&id, || missing(id.to_string())))
        .transpose()
}

#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// Inbound messages, of one sender or all.
    async fn message_received(
        &self,
        ctx: &Context<'_>,
        sender_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<MessageReceivedEvent>>>
    {
        let (services, workspace_id) = scope(ctx)?;
        let sender = optional_id(sender_id, Error::SenderNotFound)?;
        Ok(workspace_events(
            services,
            workspace_id,
            sender,
            move |payload| match payload {
                EventPayload::MessageReceived(m) if sender.is_none_or(|s| s == m.sender_id) => {
                    Some(MessageReceivedEvent {
                        customer_phone: m.customer_phone.clone(),
                        customer_user_id: m.customer_user_id.clone(),
                        customer_username: m.customer_username.clone(),
                        customer_name: m.customer_name.clone(),
                        message: m.message.clone(),
                        kind: m.kind,
                        payload: m.payload.clone().map(Json),
                        referral: m.referral.clone().map(Json),
                        message_id: m.message_id.into(),
                        sender_id: m.sender_id.into(),
                        conversation_id: m.conversation_id.into(),
                        timestamp: m.timestamp,
                    })
                }
                _ => None,
            },
        ))
    }

    /// New conversations, of one sender or all.
    async fn conversation_started(
        &self,
        ctx: &Context<'_>,
        sender_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ConversationStartedEvent>>>
    {
        let (services, workspace_id) = scope(ctx)?;
        let sender = optional_id(sender_id, Error::SenderNotFound)?;
        Ok(workspace_events(
            services,
            workspace_id,
            sender,
            move |payload| match payload {
                EventPayload::ConversationStarted(c) if sender.is_none_or(|s| s == c.sender.id) => {
                    Some(ConversationStartedEvent {
                        customer_phone: c.customer_phone.clone(),
                        customer_user_id: c.customer_user_id.clone(),
                        customer_name: c.customer_name.clone(),
                        first_message: c.first_message.clone(),
                        referral: c.referral.clone().map(Json),
                        sender: (&c.sender).into(),
                        conversation_id: c.conversation_id.into(),
                    })
                }
                _ => None,
            },
        ))
    }

    /// WhatsApp said a customer changed their number (or their user id changed), and the
    /// contact moved to it; of one sender or all.
    async fn contact_identity_changed(
        &self,
        ctx: &Context<'_>,
        sender_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ContactIdentityChangedEvent>>>
    {
        let (services, workspace_id) = scope(ctx)?;
        let sender = optional_id(sender_id, Error::SenderNotFound)?;
        Ok(workspace_events(
            services,
            workspace_id,
            sender,
            move |payload| match payload {
                EventPayload::ContactIdentityChanged(c)
                    if sender.is_none_or(|s| s == c.sender_id) =>
                {
                    Some(ContactIdentityChangedEvent::from(c))
                }
                _ => None,
            },
        ))
    }

    /// Delivery statuses of outbound messages, of one conversation or all.
    async fn message_status_updated(
        &self,
        ctx: &Context<'_>,
        conversation_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<MessageStatusUpdatedEvent>>>
    {
        let (services, workspace_id) = scope(ctx)?;
        let conversation = optional_id(conversation_id, |_| Error::NotFound("conversation"))?;
        Ok(workspace_events(
            services,
            workspace_id,
            None,
            move |payload| match payload {
                EventPayload::MessageStatusUpdated(m)
                    if conversation.is_none_or(|c| c == m.conversation_id) =>
                {
                    Some(MessageStatusUpdatedEvent {
                        message_id: m.message_id.into(),
                        conversation_id: m.conversation_id.into(),
                        sender_id: m.sender_id.map(Into::into),
                        status: m.status,
                        error_code: m.error_code.clone(),
                    })
                }
                _ => None,
            },
        ))
    }

    /// Conversations that ended (by inactivity or by hand), of one sender or all.
    async fn conversation_ended(
        &self,
        ctx: &Context<'_>,
        sender_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ConversationEndedEvent>>>
    {
        let (services, workspace_id) = scope(ctx)?;
        let sender = optional_id(sender_id, Error::SenderNotFound)?;
        Ok(workspace_events(
            services,
            workspace_id,
            sender,
            move |payload| match payload {
                EventPayload::ConversationEnded(e)
                    if sender.is_none_or(|s| e.sender.as_ref().is_some_and(|x| x.id == s)) =>
                {
                    Some(ConversationEndedEvent::from(e.as_ref()))
                }
                _ => None,
            },
        ))
    }

    /// Flow runs' progress: of one flow, of one run, or all.
    async fn flow_run_updated(
        &self,
        ctx: &Context<'_>,
        flow_id: Option<ID>,
        run_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<FlowRunUpdatedEvent>>> {
        let (services, workspace_id) = scope(ctx)?;
        let flow = optional_id(flow_id, |_| Error::NotFound("flow"))?;
        let run = optional_id(run_id, |_| Error::NotFound("flow run"))?;
        Ok(workspace_events(
            services,
            workspace_id,
            None,
            move |payload| match payload {
                EventPayload::FlowRunUpdated(u)
                    if flow.is_none_or(|f| f == u.flow_id) && run.is_none_or(|r| r == u.run_id) =>
                {
                    Some(FlowRunUpdatedEvent {
                        run_id: u.run_id.into(),
                        flow_id: u.flow_id.into(),
                        status: u.status,
                        error: u.error.clone(),
                        step_id: u.step_id.clone(),
                        step_status: u.step_status,
                    })
                }
                _ => None,
            },
        ))
    }

    /// Quality rating changes of the workspace's senders.
    async fn sender_quality_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<SenderQualityChangedEvent>>>
    {
        let (services, workspace_id) = scope(ctx)?;
        Ok(workspace_events(
            services,
            workspace_id,
            None,
            |payload| match payload {
                EventPayload::SenderQualityChanged(q) => Some(SenderQualityChangedEvent {
                    sender: (&q.sender).into(),
                    previous: q.previous,
                    current: q.current,
                }),
                _ => None,
            },
        ))
    }
}
