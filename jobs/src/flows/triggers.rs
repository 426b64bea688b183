//! Starting runs: the trigger index (one row per enabled, published flow), matching events
//! against it, custom events, inbound webhooks and schedules. WhatsApp triggers get the
//! snake_case payload the conversation-ended webhook uses, so `{{ trigger.customer_name }}`
//! works as the docs write it.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter,
    QuerySelect, RelationDef, Set, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    enums::{QualityRating, TemplateCategory},
    flow, flow_run, flow_trigger, flow_version, template,
};

use super::{
    FlowService,
    definition::{self, Trigger},
    runs,
    schedule::Schedule,
};
use crate::{
    error::{Error, Result},
    events::{Event, EventPayload, FlowPaused, SenderRef},
    webhooks,
};

/// Rewrites the flow's row in the trigger index: present while it is enabled and published.
pub async fn index(db: &impl ConnectionTrait, flow: &flow::Model) -> Result<()> {
    flow_trigger::Entity::delete_by_id(flow.id).exec(db).await?;
    let (true, Some(number)) = (flow.enabled, flow.published_version) else {
        return Ok(());
    };
    let Some(version) = flow_version::Entity::find()
        .filter(flow_version::Column::FlowId.eq(flow.id))
        .filter(flow_version::Column::Version.eq(number))
        .one(db)
        .await?
    else {
        return Ok(());
    };
    let trigger_json = version.definition["trigger"].clone();
    let Ok(trigger) = serde_json::from_value::<Trigger>(trigger_json.clone()) else {
        return Ok(());
    };
    let next_fire_at = match &trigger {
        Trigger::Schedule { cron, timezone } => Schedule::parse(cron, timezone.as_deref())
            .ok()
            .and_then(|s| s.next_after(Utc::now())),
        _ => None,
    };
    flow_trigger::ActiveModel {
        flow_id: Set(flow.id),
        workspace_id: Set(flow.workspace_id),
        trigger_type: Set(trigger.kind().to_owned()),
        sender_id: Set(trigger.sender_id()),
        event_name: Set(match &trigger {
            Trigger::Event { name } => Some(name.clone()),
            _ => None,
        }),
        flow_version_id: Set(version.id),
        trigger: Set(trigger_json),
        next_fire_at: Set(next_fire_at),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The trigger payload of a WhatsApp event, and the sender it came through.
pub(super) fn whatsapp_payload(event: &Event) -> Option<(&'static str, Option<Uuid>, Value)> {
    Some(match &event.payload {
        EventPayload::MessageReceived(m) => (
            "message_received",
            Some(m.sender_id),
            json!({"customer_phone": m.customer_phone, "customer_user_id": m.customer_user_id,
                   "customer_username": m.customer_username, "customer_name": m.customer_name,
                   "message": m.message, "kind": m.kind, "payload": m.payload,
                   "referral": m.referral, "message_id": m.message_id, "sender_id": m.sender_id,
                   "conversation_id": m.conversation_id, "timestamp": m.timestamp}),
        ),
        EventPayload::ConversationStarted(s) => (
            "conversation_started",
            Some(s.sender.id),
            json!({"customer_phone": s.customer_phone, "customer_user_id": s.customer_user_id,
                   "customer_name": s.customer_name, "referral": s.referral,
                   "message": s.first_message, "first_message": s.first_message,
                   "sender_id": s.sender.id, "conversation_id": s.conversation_id,
                   "sender": {"id": s.sender.id, "phone_number": s.sender.phone_number,
                              "display_name": s.sender.display_name},
                   "timestamp": event.at}),
        ),
        EventPayload::ConversationEnded(e) => {
            let sender_id = e.sender.as_ref().map(|s| s.id);
            let mut payload = webhooks::body(event);
            if let Value::Object(map) = &mut payload {
                map.remove("event");
                map.remove("event_id");
                map.insert("sender_id".into(), json!(sender_id));
            }
            ("conversation_ended", sender_id, payload)
        }
        _ => return None,
    })
}

impl FlowService<'_> {
    /// Starts the runs an event triggers (`replies` hands an inbound message to the runs
    /// waiting for it). Called for every event after it is published; a failure is logged,
    /// never undoes the event.
    pub async fn on_event(&self, event: &Event) {
        if let Err(error) = self.try_on_event(event).await {
            tracing::error!(%error, event_id = %event.id, "could not start the flows of an event");
        }
    }

    async fn try_on_event(&self, event: &Event) -> Result<()> {
        if let EventPayload::SenderQualityChanged(change) = &event.payload
            && change.current == QualityRating::Red
        {
            return self
                .pause_marketing(event.workspace_id, &change.sender)
                .await;
        }
        let Some((kind, sender_id, payload)) = whatsapp_payload(event) else {
            return Ok(());
        };
        let text = payload["message"].as_str().unwrap_or_default().to_owned();
        for row in self
            .matching(
                event.workspace_id,
                event.routes_version,
                kind,
                sender_id,
                None,
            )
            .await?
        {
            if let Ok(Trigger::MessageReceived {
                matcher: Some(matcher),
                ..
            }) = serde_json::from_value::<Trigger>(row.trigger.clone())
                && !matcher.matches(&text)
            {
                continue;
            }
            self.start_indexed(&row, kind, payload.clone(), 0).await?;
        }
        Ok(())
    }

    /// Index rows of `kind` in the workspace, for any sender or this one (or this event name),
    /// as of `routes_version` (read now when `None`; see `crate::event_routes`).
    async fn matching(
        &self,
        workspace_id: Uuid,
        routes_version: Option<i64>,
        kind: &str,
        sender_id: Option<Uuid>,
        event_name: Option<&str>,
    ) -> Result<Vec<flow_trigger::Model>> {
        let routes = self
            .services
            .routes
            .get(&self.services.db, workspace_id, routes_version)
            .await?;
        Ok(routes
            .triggers
            .iter()
            .filter(|row| row.trigger_type == kind)
            .filter(|row| row.sender_id.is_none() || row.sender_id == sender_id)
            .filter(|row| event_name.is_none_or(|name| row.event_name.as_deref() == Some(name)))
            .cloned()
            .collect())
    }

    /// A run of the flow `row` indexes, the `hop`th of a chain of runs calling webhooks (0:
    /// none).
    async fn start_indexed(
        &self,
        row: &flow_trigger::Model,
        kind: &str,
        payload: Value,
        hop: u32,
    ) -> Result<Option<flow_run::Model>> {
        let Some(version) = super::versions::find(self.services, row.flow_version_id).await? else {
            return Ok(None);
        };
        let flow = (row.workspace_id, row.flow_id);
        runs::create_in_chain(self.services, flow, &version.row, kind, payload, hop)
            .await
            .map(Some)
    }

    /// A custom event: starts every enabled flow whose trigger is `event` with this name.
    pub async fn emit_event(
        &self,
        workspace_id: Uuid,
        name: &str,
        payload: Value,
    ) -> Result<Vec<flow_run::Model>> {
        if name.trim().is_empty() {
            return Err(Error::field("name", "must not be empty"));
        }
        let mut started = Vec::new();
        for row in self
            .matching(workspace_id, None, "event", None, Some(name.trim()))
            .await?
        {
            started.extend(
                self.start_indexed(&row, "event", payload.clone(), 0)
                    .await?,
            );
        }
        Ok(started)
    }

    /// `POST /hooks/flows/{id}`: the body starts a run of the flow when the secret is its own.
    /// `hop`: how many runs of a chain came before (the `X-Waflow-Hop` header); a chain longer
    /// than `limits::MAX_HOPS` is refused. While the flow queue's backlog is past its limit
    /// (`Services::run_backlog`) no run starts: `Error::Unavailable`, after the secret and the
    /// trigger were checked.
    pub async fn inbound_webhook(
        &self,
        flow_id: Uuid,
        secret: &str,
        payload: Value,
        hop: u32,
    ) -> Result<flow_run::Model> {
        // The flow and its index row in one read: this is every webhook's hot path.
        let index_row: RelationDef = flow_trigger::Entity::belongs_to(flow::Entity)
            .from(flow_trigger::Column::FlowId)
            .to(flow::Column::Id)
            .into();
        let (flow, row) = flow::Entity::find_by_id(flow_id)
            .select_also(flow_trigger::Entity)
            .join(JoinType::LeftJoin, index_row.rev())
            .one(&self.services.db)
            .await?
            .ok_or(Error::NotFound("flow"))?;
        let expected = match &flow.webhook_secret_enc {
            Some(sealed) => self.services.secrets.decrypt(sealed)?,
            None => return Err(Error::Unauthenticated),
        };
        if !crate::crypto::secrets_match(&expected, secret) {
            return Err(Error::Unauthenticated);
        }
        let row = row
            .filter(|row| row.trigger_type == "webhook")
            .ok_or_else(|| {
                Error::field(
                    "flowId",
                    "the flow is not enabled, or its trigger is not a webhook",
                )
            })?;
        if hop >= super::limits::MAX_HOPS {
            return Err(Error::field(
                "X-Waflow-Hop",
                format!(
                    "{hop} flow runs, each calling the next one's webhook, came before: a chain \
                     stops at {}",
                    super::limits::MAX_HOPS
                ),
            ));
        }
        // Accepting a run the workers will reach only minutes later would hide how far behind
        // they are: refuse it while the flow queue's backlog is past its limit.
        self.services.run_backlog.check().await?;
        self.start_indexed(&row, "webhook", payload, hop)
            .await?
            .ok_or(Error::NotFound("flow"))
    }

    /// A sender's quality fell to RED: disable the enabled flows that send MARKETING templates
    /// through it (Meta penalises a number that keeps sending them), and say so.
    async fn pause_marketing(&self, workspace_id: Uuid, sender: &SenderRef) -> Result<()> {
        let db = &self.services.db;
        let live = flow::Entity::find()
            .filter(flow::Column::WorkspaceId.eq(workspace_id))
            .filter(flow::Column::Enabled.eq(true))
            .all(db)
            .await?;
        let marketing: Vec<(String, String)> = template::Entity::find()
            .filter(template::Column::SenderId.eq(sender.id))
            .filter(template::Column::Category.eq(TemplateCategory::Marketing))
            .all(db)
            .await?
            .into_iter()
            .map(|t| (t.name, t.language))
            .collect();
        for flow in live {
            let Some(number) = flow.published_version else {
                continue;
            };
            let Some(version) = self.version(&flow, number).await? else {
                continue;
            };
            let Ok(definition) = definition::parse(&version.definition) else {
                continue;
            };
            let mut sends_marketing = false;
            definition::walk(&definition.steps, "steps", &mut |step, _| {
                if let definition::Action::Leaf(definition::Leaf::SendTemplate(send)) = &step.action
                {
                    sends_marketing |= send.sender_id == sender.id
                        && marketing
                            .iter()
                            .any(|(n, l)| *n == send.template && *l == send.language);
                }
            });
            if !sends_marketing {
                continue;
            }
            let reason = format!(
                "sender {} has a RED quality rating: flows sending its MARKETING templates are paused",
                sender.phone_number
            );
            let txn = crate::db::begin_write(db).await?;
            let mut model: flow::ActiveModel = flow.clone().into();
            model.enabled = Set(false);
            model.paused_reason = Set(Some(reason.clone()));
            model.updated_at = Set(Utc::now());
            let paused = model.update(&txn).await?;
            index(&txn, &paused).await?;
            txn.commit().await?;
            tracing::warn!(flow_id = %flow.id, %reason, "flow paused");
            let event = Event::new(
                workspace_id,
                EventPayload::FlowPaused(FlowPaused {
                    flow_id: flow.id,
                    flow_name: flow.name,
                    sender_id: sender.id,
                    reason,
                }),
            );
            Box::pin(self.services.emit(event)).await;
        }
        Ok(())
    }

    /// Starts the runs of schedules that are due: each firing once across all processes.
    pub async fn fire_due_schedules(&self) -> Result<usize> {
        let now = Utc::now();
        let due = flow_trigger::Entity::find()
            .filter(flow_trigger::Column::TriggerType.eq("schedule"))
            .filter(flow_trigger::Column::NextFireAt.lte(now))
            .all(&self.services.db)
            .await?;
        let mut started = 0;
        for row in due {
            let Some(at) = row.next_fire_at else { continue };
            let next = match serde_json::from_value::<Trigger>(row.trigger.clone()) {
                Ok(Trigger::Schedule { cron, timezone }) => {
                    Schedule::parse(&cron, timezone.as_deref())
                        .ok()
                        .and_then(|s| s.next_after(now))
                }
                _ => None,
            };
            // Whoever moves the firing time on owns this firing.
            let moved = flow_trigger::Entity::update_many()
                .col_expr(flow_trigger::Column::NextFireAt, Expr::value(next))
                .filter(flow_trigger::Column::FlowId.eq(row.flow_id))
                .filter(flow_trigger::Column::NextFireAt.eq(at))
                .exec(&self.services.db)
                .await?
                .rows_affected;
            if moved == 1 {
                let payload = json!({"scheduled_at": at, "fired_at": now, "flow_id": row.flow_id});
                self.start_indexed(&row, "schedule", payload, 0).await?;
                started += 1;
            }
        }
        Ok(started)
    }
}
