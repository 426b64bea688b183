//! Outgoing webhooks: endpoints a workspace registers, and one delivery per event and endpoint,
//! POSTed as a job, signed with the endpoint's secret, retried with growing delays, and kept
//! with its last answer so a user can see (and redo) what happened.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use waflow_entities::{
    enums::{DeliveryStatus, MessageRole, WebhookEvent},
    webhook_delivery, webhook_endpoint,
};

use crate::context::{Services, find_in_workspace};
use crate::{
    error::{Error, Result},
    events::{ConversationEnded, Event, EventPayload},
    pagination::{Page, PageRequest, paginate},
    queue::SystemJob,
    validation::Problems,
};

/// How long a receiver may take to answer one delivery.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a failed answer is kept to show.
const EXCERPT: usize = 500;

pub struct WebhookService<'a> {
    pub(crate) services: &'a Services,
}

impl Services {
    pub fn webhooks(&self) -> WebhookService<'_> {
        WebhookService { services: self }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EndpointSettings {
    pub url: Option<String>,
    pub events: Option<Vec<WebhookEvent>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// The webhook event an event is delivered as; `None` for those only subscriptions stream.
pub fn kind(payload: &EventPayload) -> Option<WebhookEvent> {
    Some(match payload {
        EventPayload::MessageReceived(_) => WebhookEvent::MessageReceived,
        EventPayload::ConversationStarted(_) => WebhookEvent::ConversationStarted,
        EventPayload::ConversationEnded(_) => WebhookEvent::ConversationEnded,
        EventPayload::MessageStatusUpdated(_) => WebhookEvent::MessageStatusUpdated,
        EventPayload::SenderQualityChanged(_) => WebhookEvent::SenderQualityChanged,
        EventPayload::FlowRunFailed(_) => WebhookEvent::FlowRunFailed,
        EventPayload::FlowPaused(_) => WebhookEvent::FlowPaused,
        EventPayload::CampaignPaused(_) => WebhookEvent::CampaignPaused,
        EventPayload::ContactIdentityChanged(_) => WebhookEvent::ContactIdentityChanged,
        EventPayload::FlowRunUpdated(_)
        | EventPayload::CampaignChanged(_)
        | EventPayload::ApiKeyRevoked(_) => return None,
    })
}

/// The `event` field and `X-Waflow-Event` header of a delivery.
pub fn wire_name(kind: WebhookEvent) -> &'static str {
    match kind {
        WebhookEvent::MessageReceived => "message.received",
        WebhookEvent::ConversationStarted => "conversation.started",
        WebhookEvent::ConversationEnded => "conversation.ended",
        WebhookEvent::MessageStatusUpdated => "message.status",
        WebhookEvent::SenderQualityChanged => "sender.quality_changed",
        WebhookEvent::FlowRunFailed => "flow_run.failed",
        WebhookEvent::FlowPaused => "flow.paused",
        WebhookEvent::CampaignPaused => "campaign.paused",
        WebhookEvent::ContactIdentityChanged => "contact.identity_changed",
    }
}

/// The JSON body of a delivery: `event` beside the payload's fields. conversation.ended uses the
/// snake_case fields integrators of WhatsApp AI platforms already parse.
pub fn body(event: &Event) -> Value {
    let name = kind(&event.payload).map_or("", wire_name);
    let mut body = match &event.payload {
        EventPayload::ConversationEnded(ended) => conversation_ended_body(ended),
        EventPayload::MessageReceived(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::ConversationStarted(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::MessageStatusUpdated(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::SenderQualityChanged(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::FlowRunFailed(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::FlowPaused(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::FlowRunUpdated(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::CampaignPaused(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::CampaignChanged(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::ApiKeyRevoked(p) => serde_json::to_value(p).expect("serializes"),
        EventPayload::ContactIdentityChanged(p) => serde_json::to_value(p).expect("serializes"),
    };
    body["event"] = json!(name);
    body["event_id"] = json!(event.id);
    body
}

fn conversation_ended_body(e: &ConversationEnded) -> Value {
    let transcript: Vec<Value> = e
        .transcript
        .iter()
        .map(|t| {
            let role = match t.role {
                MessageRole::Customer => "user",
                MessageRole::System => "system",
                MessageRole::Assistant | MessageRole::Agent => "assistant",
            };
            json!({"role": role, "content": t.content, "timestamp": t.timestamp.to_rfc3339(),
                   "timestamp_unix": t.timestamp.timestamp()})
        })
        .collect();
    json!({
        "conversation_id": e.conversation_id,
        "assistant_id": e.assistant_id,
        "extraction_status": e.extraction_status,
        "type": format!("{:?}", e.r#type).to_lowercase(),
        "status": "ended",
        "end_reason": format!("{:?}", e.end_reason).to_lowercase(),
        "message_count": e.message_count,
        "extracted_variables": e.extracted_variables,
        "input_variables": e.input_variables,
        "transcript": transcript,
        "formatted_transcript": e.transcript_text,
        "attachments": [],
        "customer_phone": e.customer.phone,
        "customer_user_id": e.customer.user_id,
        "customer_name": e.customer.name,
        "customer_identifier": e.customer_identifier,
        "sender": e.sender.as_ref().map(|s| json!({"id": s.id, "phone_number": s.phone_number, "display_name": s.display_name})),
        "created_at": e.created_at.to_rfc3339(),
        "ended_at": e.ended_at.to_rfc3339(),
    })
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`, as the X-Waflow-Signature header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn events_of(endpoint: &webhook_endpoint::Model) -> Vec<WebhookEvent> {
    serde_json::from_value(endpoint.events.clone()).unwrap_or_default()
}

fn check(problems: &mut Problems, egress: &crate::egress::Egress, s: &EndpointSettings) {
    if let Some(url) = &s.url {
        problems.outgoing_url(egress, "url", url);
    }
    if let Some(events) = &s.events {
        problems.check(!events.is_empty(), "events", "name at least one event");
    }
}

impl WebhookService<'_> {
    /// Registers an endpoint; the signing secret is returned only here.
    pub async fn create(
        &self,
        workspace_id: Uuid,
        s: EndpointSettings,
    ) -> Result<(webhook_endpoint::Model, String)> {
        let mut problems = Problems::new();
        problems.check(s.url.is_some(), "url", "is required");
        problems.check(s.events.is_some(), "events", "are required");
        check(&mut problems, &self.services.egress, &s);
        problems.into_result()?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("whsec_{}", URL_SAFE_NO_PAD.encode(bytes));
        let now = Utc::now();
        let endpoint = webhook_endpoint::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            url: Set(s.url.unwrap_or_default()),
            description: Set(s.description),
            secret_enc: Set(self.services.secrets.encrypt(&secret)),
            events: Set(json!(s.events.unwrap_or_default())),
            enabled: Set(s.enabled.unwrap_or(true)),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.services.db)
        .await?;
        Ok((endpoint, secret))
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        s: EndpointSettings,
    ) -> Result<webhook_endpoint::Model> {
        let current = self.get(workspace_id, id).await?;
        let mut problems = Problems::new();
        check(&mut problems, &self.services.egress, &s);
        problems.into_result()?;
        let mut model: webhook_endpoint::ActiveModel = current.into();
        if let Some(url) = s.url {
            model.url = Set(url);
        }
        if let Some(events) = s.events {
            model.events = Set(json!(events));
        }
        if let Some(description) = s.description {
            model.description = Set(Some(description));
        }
        if let Some(enabled) = s.enabled {
            model.enabled = Set(enabled);
        }
        model.updated_at = Set(Utc::now());
        Ok(model.update(&self.services.db).await?)
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<Uuid> {
        let endpoint = self.get(workspace_id, id).await?;
        webhook_endpoint::Entity::delete_by_id(endpoint.id)
            .exec(&self.services.db)
            .await?;
        Ok(endpoint.id)
    }

    pub async fn get(&self, workspace_id: Uuid, id: Uuid) -> Result<webhook_endpoint::Model> {
        find_in_workspace!(
            &self.services.db,
            webhook_endpoint,
            workspace_id,
            id,
            "webhook endpoint"
        )
    }

    pub async fn list(
        &self,
        workspace_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<webhook_endpoint::Model>> {
        let select = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id));
        paginate(
            &self.services.db,
            select,
            webhook_endpoint::Column::Id,
            page,
        )
        .await
    }

    pub async fn deliveries(
        &self,
        workspace_id: Uuid,
        endpoint_id: Option<Uuid>,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<Page<webhook_delivery::Model>> {
        let mut select = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::WorkspaceId.eq(workspace_id));
        if let Some(endpoint_id) = endpoint_id {
            select = select.filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
        }
        if let Some(status) = status {
            select = select.filter(webhook_delivery::Column::Status.eq(status));
        }
        paginate(
            &self.services.db,
            select,
            webhook_delivery::Column::Id,
            page,
        )
        .await
    }

    /// Sends a delivery again (same id, so receivers can de-duplicate), now.
    pub async fn redeliver(&self, workspace_id: Uuid, id: Uuid) -> Result<webhook_delivery::Model> {
        let delivery = find_in_workspace!(
            &self.services.db,
            webhook_delivery,
            workspace_id,
            id,
            "webhook delivery"
        )?;
        let mut model: webhook_delivery::ActiveModel = delivery.into();
        model.status = Set(DeliveryStatus::Pending);
        model.next_attempt_at = Set(Some(Utc::now()));
        let delivery = model.update(&self.services.db).await?;
        self.services
            .jobs
            .system
            .push(
                SystemJob::DeliverWebhook {
                    delivery_id: delivery.id,
                },
                None,
            )
            .await?;
        Ok(delivery)
    }

    /// One delivery per enabled endpoint of the event's workspace that subscribes to it.
    pub async fn fan_out(&self, event: &Event) -> Result<()> {
        let Some(wanted) = kind(&event.payload) else {
            return Ok(());
        };
        let routes = self.services.routes_of(event).await?;
        let body = body(event);
        for endpoint in routes
            .endpoints
            .iter()
            .filter(|e| events_of(e).contains(&wanted))
        {
            let delivery = webhook_delivery::ActiveModel {
                id: Set(Uuid::now_v7()),
                workspace_id: Set(event.workspace_id),
                endpoint_id: Set(endpoint.id),
                event_type: Set(wire_name(wanted).to_owned()),
                event_id: Set(event.id),
                payload: Set(body.clone()),
                status: Set(DeliveryStatus::Pending),
                attempts: Set(0),
                response_status: Set(None),
                last_error: Set(None),
                next_attempt_at: Set(Some(Utc::now())),
                created_at: Set(Utc::now()),
                delivered_at: Set(None),
            }
            .insert(&self.services.db)
            .await?;
            self.services
                .jobs
                .system
                .push(
                    SystemJob::DeliverWebhook {
                        delivery_id: delivery.id,
                    },
                    None,
                )
                .await?;
        }
        Ok(())
    }

    /// The delivery job: one POST. A 2xx answer succeeds; anything else (or no answer in 10 s)
    /// schedules the next attempt after the backoff, or fails the delivery for good after the
    /// last one.
    pub async fn attempt(&self, delivery_id: Uuid) -> Result<()> {
        let db = &self.services.db;
        let delivery = webhook_delivery::Entity::find_by_id(delivery_id)
            .one(db)
            .await?
            .ok_or(Error::NotFound("webhook delivery"))?;
        if delivery.status != DeliveryStatus::Pending {
            return Ok(());
        }
        let Some(endpoint) = webhook_endpoint::Entity::find_by_id(delivery.endpoint_id)
            .one(db)
            .await?
        else {
            return Ok(());
        };
        let secret = self.services.secrets.decrypt(&endpoint.secret_enc)?;
        let bytes = serde_json::to_vec(&delivery.payload).expect("serializes");
        let (status, error) = match self.services.egress.post(&endpoint.url) {
            // Saved before the policy, or a name that now points inside: an attempt that
            // failed, retried like any other (the operator may allow private networks).
            Err(refused) => (None, Some(refused.to_string())),
            Ok(request) => {
                let sent = request
                    .timeout(DELIVERY_TIMEOUT)
                    .header("content-type", "application/json")
                    .header("x-waflow-event", &delivery.event_type)
                    .header("x-waflow-delivery", delivery.id.to_string())
                    .header("x-waflow-signature", signature(&secret, &bytes))
                    .body(bytes)
                    .send()
                    .await;
                delivery_outcome(sent).await
            }
        };
        let attempts = delivery.attempts + 1;
        let mut model: webhook_delivery::ActiveModel = delivery.into();
        model.attempts = Set(attempts);
        model.response_status = Set(status.map(i32::from));
        let now = Utc::now();
        let retry = match error {
            None => {
                metrics::counter!("waflow_webhook_deliveries_total", "result" => "succeeded")
                    .increment(1);
                model.status = Set(DeliveryStatus::Succeeded);
                model.delivered_at = Set(Some(now));
                model.last_error = Set(None);
                model.next_attempt_at = Set(None);
                None
            }
            Some(error) => {
                model.last_error = Set(Some(error));
                match self
                    .services
                    .webhook_backoff
                    .get(attempts as usize - 1)
                    .copied()
                {
                    Some(wait) => {
                        metrics::counter!("waflow_webhook_deliveries_total", "result" => "retrying")
                            .increment(1);
                        model.next_attempt_at = Set(Some(
                            now + chrono::Duration::from_std(wait).unwrap_or_default(),
                        ));
                        Some(wait)
                    }
                    None => {
                        metrics::counter!("waflow_webhook_deliveries_total", "result" => "failed")
                            .increment(1);
                        model.status = Set(DeliveryStatus::Failed);
                        model.next_attempt_at = Set(None);
                        None
                    }
                }
            }
        };
        model.update(db).await?;
        if let Some(wait) = retry {
            self.services
                .jobs
                .system
                .push(SystemJob::DeliverWebhook { delivery_id }, Some(wait))
                .await?;
        }
        Ok(())
    }
}

/// The HTTP status and, unless the receiver answered 2xx, what went wrong.
async fn delivery_outcome(
    sent: reqwest::Result<reqwest::Response>,
) -> (Option<u16>, Option<String>) {
    match sent {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => {
            let code = response.status().as_u16();
            let text = match crate::egress::read_capped(response, EXCERPT * 4).await {
                Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => String::new(),
            };
            (
                Some(code),
                Some(format!(
                    "HTTP {code}: {}",
                    text.chars().take(EXCERPT).collect::<String>()
                )),
            )
        }
        Err(e) => (
            None,
            Some(if e.is_timeout() {
                "no answer within 10 s".into()
            } else {
                crate::egress::describe(&e)
            }),
        ),
    }
}
