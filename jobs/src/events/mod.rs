//! Events: one per thing that happens, published after the transaction that caused it commits,
//! to GraphQL subscribers now and to outgoing webhooks and flow triggers later.
//!
//! One bus, two implementations. Embedded: an in-process broadcast channel. Production: every
//! process publishes to one Redis channel and keeps one subscription to it that feeds its local
//! broadcast channel, so a subscriber connected to any process sees events caused on any other.
//! Locally, events are routed by workspace and sender (`router`), so a subscription wakes
//! only for events it may want. Each channel is bounded: a subscriber that falls behind loses its
//! place and is told (`Lagged`), and a publisher never waits for subscribers.

mod router;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;
use waflow_entities::enums::{
    ConversationStatus, ConversationType, EndReason, ExtractionStatus, MessageDirection,
    MessageKind, MessageRole, MessageStatus, QualityRating, RunStatus, StepStatus,
};

use router::LocalRouter;

/// Events a slow subscriber may fall behind by before it is told it lagged.
pub const BUFFER: usize = 1024;
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub at: DateTime<Utc>,
    pub payload: EventPayload,
    /// The workspace's `routes_version` as the transaction that produced the event read it:
    /// the event is routed by the endpoints and triggers of that version, with no read
    /// (`crate::event_routes`). `None`: read it when routing. This process's bookkeeping, not
    /// part of the event: never sent, never compared.
    #[serde(skip)]
    pub routes_version: Option<i64>,
    /// Reactions the transaction that produced the event found nothing for, before it
    /// committed (`crate::context::Reaction::probe`): `Services::emit` skips them. This
    /// process's bookkeeping too: never sent, never compared.
    #[serde(skip)]
    pub idle_reactions: Vec<&'static str>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.id, self.workspace_id, self.at) == (other.id, other.workspace_id, other.at)
            && self.payload == other.payload
    }
}

impl Event {
    pub fn new(workspace_id: Uuid, payload: EventPayload) -> Self {
        Self {
            id: Uuid::now_v7(),
            workspace_id,
            at: Utc::now(),
            payload,
            routes_version: None,
            idle_reactions: Vec::new(),
        }
    }

    /// The event, produced by a transaction that read the workspace's `routes_version`
    /// (`None`: it did not).
    pub fn routed_by(mut self, routes_version: Option<i64>) -> Self {
        self.routes_version = routes_version;
        self
    }

    /// The event, whose transaction found nothing for these reactions to do.
    pub fn idle_for(mut self, reactions: Vec<&'static str>) -> Self {
        self.idle_reactions = reactions;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Adjacently tagged: a payload may have a `type` field of its own (the conversation's).
#[serde(tag = "type", content = "data", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventPayload {
    MessageReceived(MessageReceived),
    ConversationStarted(ConversationStarted),
    MessageStatusUpdated(MessageStatusUpdated),
    SenderQualityChanged(SenderQualityChanged),
    ConversationEnded(Box<ConversationEnded>),
    FlowRunUpdated(FlowRunUpdated),
    FlowRunFailed(FlowRunFailed),
    FlowPaused(FlowPaused),
    CampaignPaused(CampaignPaused),
    CampaignChanged(CampaignChanged),
    ContactIdentityChanged(ContactIdentityChanged),
    /// An API key was revoked: connections it opened close (not for subscribers or webhooks).
    ApiKeyRevoked(ApiKeyRevoked),
}

/// WhatsApp said a customer's number (or business-scoped user id) changed, and Waflow moved
/// the contact to it: `moved` is false when the new number already belonged to another contact
/// (both are kept; merge them by hand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactIdentityChanged {
    pub contact_id: Uuid,
    pub sender_id: Uuid,
    /// The SYSTEM message that records the notice in the conversation.
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    /// Meta's `system.type`: `user_changed_number` or `user_changed_user_id`.
    pub change: String,
    pub previous_phone: Option<String>,
    pub phone: Option<String>,
    pub previous_user_id: Option<String>,
    pub user_id: Option<String>,
    pub moved: bool,
    /// WhatsApp's text of the notice.
    pub notice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub api_key_id: Uuid,
}

impl EventPayload {
    /// Whether the event is the server's own business (it reaches no subscription, webhook or
    /// flow, only the process-wide control channel).
    pub fn is_control(&self) -> bool {
        matches!(self, EventPayload::ApiKeyRevoked(_))
    }
}

/// A campaign stopped sending: a user paused it, or a safety rule did (`automatic`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignPaused {
    pub campaign_id: Uuid,
    pub campaign_name: String,
    pub sender_id: Uuid,
    pub reason: String,
    pub automatic: bool,
}

/// A campaign's state or recipients' counts changed; subscribers read the new counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignChanged {
    pub campaign_id: Uuid,
}

/// Waflow disabled a flow: it sends MARKETING templates through a sender whose quality is RED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowPaused {
    pub flow_id: Uuid,
    pub flow_name: String,
    pub sender_id: Uuid,
    pub reason: String,
}

/// A flow run changed state, or one of its steps started or finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRunUpdated {
    pub run_id: Uuid,
    pub flow_id: Uuid,
    pub status: RunStatus,
    pub error: Option<String>,
    pub step_id: Option<String>,
    pub step_status: Option<StepStatus>,
}

/// A flow run failed for good (its retries spent): the "notify your team" event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRunFailed {
    pub run_id: Uuid,
    pub flow_id: Uuid,
    pub flow_name: String,
    pub step_id: Option<String>,
    pub error: String,
    /// The failed run's trigger payload.
    pub trigger: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SenderRef {
    pub id: Uuid,
    pub phone_number: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageReceived {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub sender_id: Uuid,
    /// E.164; `None` for a customer who hides their number behind a username.
    pub customer_phone: Option<String>,
    /// Meta's business-scoped user id, when it gave one.
    pub customer_user_id: Option<String>,
    pub customer_username: Option<String>,
    pub customer_name: Option<String>,
    /// What a person reads: the text, a caption, a button's title, an order's items.
    pub message: Option<String>,
    pub kind: MessageKind,
    /// The structured content (`Message.payload`): media, location, order, reply ids.
    pub payload: Option<serde_json::Value>,
    /// The Click-to-WhatsApp ad the message came from (Meta's `referral`).
    pub referral: Option<serde_json::Value>,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationStarted {
    pub conversation_id: Uuid,
    pub customer_phone: Option<String>,
    pub customer_user_id: Option<String>,
    pub customer_name: Option<String>,
    pub first_message: Option<String>,
    /// The ad that brought the customer, when the first message came from one.
    pub referral: Option<serde_json::Value>,
    pub sender: SenderRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatusUpdated {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub status: MessageStatus,
    pub error_code: Option<String>,
}

/// One message of a transcript, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    pub role: MessageRole,
    pub direction: MessageDirection,
    pub content: Option<String>,
    pub kind: MessageKind,
    pub timestamp: DateTime<Utc>,
    pub status: MessageStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub phone: Option<String>,
    /// Meta's business-scoped user id, when one is known.
    #[serde(default)]
    pub user_id: Option<String>,
    pub name: Option<String>,
}

/// The conversation-ended payload: built once when the conversation ends, stored with it, and
/// sent to subscribers (and later to webhooks and flow triggers) as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationEnded {
    pub conversation_id: Uuid,
    pub r#type: ConversationType,
    pub status: ConversationStatus,
    pub end_reason: EndReason,
    pub transcript: Vec<TranscriptEntry>,
    /// One line per message, `Customer: …` or `AI: …`.
    pub transcript_text: String,
    pub extracted_variables: serde_json::Value,
    pub input_variables: serde_json::Value,
    pub customer: Customer,
    pub customer_identifier: Option<String>,
    pub sender: Option<SenderRef>,
    pub message_count: i32,
    pub created_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// The assistant that answered in the conversation, if one did.
    #[serde(default)]
    pub assistant_id: Option<Uuid>,
    /// The evaluation that fills `extracted_variables`: COMPLETED, FAILED or TIMED_OUT when the
    /// event goes out; `None` when the assistant evaluates nothing.
    #[serde(default)]
    pub extraction_status: Option<ExtractionStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SenderQualityChanged {
    pub sender: SenderRef,
    pub previous: QualityRating,
    pub current: QualityRating,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events cross processes as JSON: every kind must come back as it went.
    #[test]
    fn every_event_round_trips_through_json() {
        let sender = SenderRef {
            id: Uuid::now_v7(),
            phone_number: "+14155550100".into(),
            display_name: "Acme".into(),
        };
        let ended = ConversationEnded {
            conversation_id: Uuid::now_v7(),
            r#type: ConversationType::Whatsapp,
            status: ConversationStatus::Ended,
            end_reason: EndReason::Manual,
            transcript: vec![],
            transcript_text: String::new(),
            extracted_variables: serde_json::json!({}),
            input_variables: serde_json::json!({"a": 1}),
            customer: Customer {
                phone: Some("+14155550123".into()),
                user_id: None,
                name: None,
            },
            customer_identifier: None,
            sender: Some(sender.clone()),
            message_count: 0,
            created_at: Utc::now(),
            ended_at: Utc::now(),
            assistant_id: Some(Uuid::now_v7()),
            extraction_status: Some(ExtractionStatus::TimedOut),
        };
        let quality = SenderQualityChanged {
            sender,
            previous: QualityRating::Green,
            current: QualityRating::Red,
        };
        for payload in [
            EventPayload::ConversationEnded(Box::new(ended)),
            EventPayload::SenderQualityChanged(quality),
        ] {
            let event = Event::new(Uuid::now_v7(), payload);
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        }
    }
}

impl From<&waflow_entities::sender::Model> for SenderRef {
    fn from(s: &waflow_entities::sender::Model) -> Self {
        Self {
            id: s.id,
            phone_number: s.phone_number.clone(),
            display_name: s.display_name.clone(),
        }
    }
}

#[derive(Clone)]
pub struct EventBus {
    local: LocalRouter,
    redis: Option<RedisFanOut>,
}

#[derive(Clone)]
struct RedisFanOut {
    publisher: redis::aio::ConnectionManager,
    channel: String,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.redis {
            None => f.write_str("EventBus::InProcess"),
            Some(r) => write!(f, "EventBus::Redis({})", r.channel),
        }
    }
}

impl EventBus {
    pub fn in_process() -> Self {
        Self {
            local: LocalRouter::default(),
            redis: None,
        }
    }

    /// Fans events out over the Redis channel `channel`. Returns once this process's one
    /// subscription is live (so nothing published afterwards is missed); the listener then
    /// reconnects by itself whenever Redis goes away.
    pub async fn redis(
        client: redis::Client,
        publisher: redis::aio::ConnectionManager,
        channel: String,
    ) -> redis::RedisResult<Self> {
        let local = LocalRouter::default();
        let mut first = client.get_async_pubsub().await?;
        first.subscribe(&channel).await?;
        tokio::spawn(listen(client, channel.clone(), local.clone(), first));
        Ok(Self {
            local,
            redis: Some(RedisFanOut { publisher, channel }),
        })
    }

    /// Publishes after the fact: a failure to publish is logged, never undoes what happened.
    pub async fn publish(&self, event: Event) {
        match &self.redis {
            None => {
                self.local.deliver(event);
            }
            Some(fan_out) => {
                let json = serde_json::to_string(&event).expect("events serialize");
                let published: redis::RedisResult<()> = redis::cmd("PUBLISH")
                    .arg(&fan_out.channel)
                    .arg(json)
                    .query_async(&mut fan_out.publisher.clone())
                    .await;
                if let Err(error) = published {
                    tracing::warn!(%error, event_id = %event.id, "could not publish an event to Redis");
                }
            }
        }
    }

    /// Control events (a key revoked) published from now on by any process, of every workspace.
    pub fn subscribe_control(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe_control()
    }

    /// Events of `workspace_id` published from now on (by any process), or only those about
    /// `sender_id` when given.
    pub fn subscribe(
        &self,
        workspace_id: Uuid,
        sender_id: Option<Uuid>,
    ) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe(workspace_id, sender_id)
    }
}

async fn listen(
    client: redis::Client,
    channel: String,
    local: LocalRouter,
    first: redis::aio::PubSub,
) {
    let mut subscribed = Some(first);
    loop {
        if let Some(mut pubsub) = subscribed.take() {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                match serde_json::from_str::<Event>(&payload) {
                    Ok(event) => {
                        local.deliver(event);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ignoring an event this version cannot read")
                    }
                }
            }
            tracing::warn!("lost the Redis event subscription; reconnecting");
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => subscribed = Some(pubsub),
                Err(error) => tracing::warn!(%error, "cannot subscribe to Redis events; retrying"),
            },
            Err(error) => tracing::warn!(%error, "cannot reach Redis for events; retrying"),
        }
    }
}
