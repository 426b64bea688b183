//! Campaigns: one approved template to many contacts, made safe. A campaign is checked when it
//! is created (`setup`), freezes its audience into one recipient row per contact when it starts
//! (`lifecycle`, with pause, resume and cancel), and is sent by one dispatcher job at a time
//! (`dispatch`, `sending`) at its pace and inside its send window (`window`). Delivery reports,
//! replies and the sender's health feed back into it (`feedback`), and the safety rules pause it.

pub mod dispatch;
pub mod feedback;
mod lifecycle;
mod sending;
pub mod setup;
pub mod window;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    E164, campaign, campaign_recipient, contact,
    enums::{CampaignStatus, RecipientStatus},
    message,
};

use crate::{
    Services,
    context::find_in_workspace,
    error::{Error, Result},
    events::{CampaignChanged, Event, EventPayload},
    messaging::{SendTemplate, TemplateRef},
    pagination::{Page, PageRequest, paginate},
};
pub use setup::{Audience, AudienceFilter, NewCampaign, Variables};

pub use crate::queue::DispatchCampaign;

/// Recipients written per statement when a campaign starts.
const RECIPIENT_BATCH: usize = 500;

/// The recipients' counts, cumulative along the funnel: a read message was also delivered and sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: i64,
    pub pending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Progress {
    fn add(&mut self, status: RecipientStatus, count: i64) {
        use RecipientStatus::*;
        self.total += count;
        match status {
            Pending => self.pending += count,
            Failed => self.failed += count,
            SkippedOptedOut | SkippedInvalid | SkippedCancelled => self.skipped += count,
            Sent | Delivered | Read | Replied => {
                self.sent += count;
                if status != Sent {
                    self.delivered += count;
                }
                if matches!(status, Read | Replied) {
                    self.read += count;
                }
                if status == Replied {
                    self.replied += count;
                }
            }
        }
    }
}

pub struct CampaignService<'a> {
    services: &'a Services,
}

impl Services {
    pub fn campaigns(&self) -> CampaignService<'_> {
        CampaignService { services: self }
    }
}

impl CampaignService<'_> {
    /// Checks and stores a DRAFT campaign; nothing is sent until it is started.
    pub async fn create(&self, workspace_id: Uuid, input: NewCampaign) -> Result<campaign::Model> {
        let templates = self.services.sandbox.for_workspace(workspace_id);
        let checked = setup::check(&templates, &input).await?;
        let db = &self.services.db;
        if let Audience::Filter(filter) = &input.audience {
            self.services
                .contacts()
                .matching(workspace_id, &filter.contact_filter())
                .map_err(|e| match e {
                    Error::Validation(fields) => Error::Validation(
                        fields
                            .into_iter()
                            .map(|mut f| {
                                f.field = format!("audience.{}", f.field);
                                f
                            })
                            .collect(),
                    ),
                    other => other,
                })?;
        }
        let sender = find_in_workspace!(db, sender, workspace_id, input.sender_id, "sender")
            .map_err(|_| Error::SenderNotFound(input.sender_id.to_string()))?;
        let template = self
            .services
            .messaging()
            .approved_template(
                workspace_id,
                &sender,
                &TemplateRef::Name {
                    name: input.template_name.clone(),
                    language: input.language.clone(),
                },
            )
            .await?;
        setup::check_template(&template, &checked.variables, input.acknowledge_no_opt_out)?;
        let now = Utc::now();
        let model = campaign::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            name: Set(input.name.trim().to_owned()),
            sender_id: Set(sender.id),
            template_id: Set(template.id),
            template_name: Set(template.name.clone()),
            language: Set(template.language.clone()),
            variables: Set(input.variables.clone().unwrap_or(Value::Null)),
            template_parameters: Set((input.parameters != Default::default())
                .then(|| serde_json::to_value(&input.parameters).expect("serializes"))),
            audience: Set(serde_json::to_value(&input.audience).expect("serializes")),
            start_at: Set(input.start_at),
            timezone: Set(checked.timezone),
            send_window: Set(input
                .send_window
                .as_ref()
                .map(|w| serde_json::to_value(w).expect("serializes"))),
            messages_per_second: Set(input
                .messages_per_second
                .unwrap_or(sender.messages_per_second)),
            acknowledge_no_opt_out: Set(input.acknowledge_no_opt_out),
            pause_on_quality: Set(checked.pause_on_quality),
            failure_rate_window: Set(checked.failure_rate_window),
            failure_rate_threshold: Set(checked.failure_rate_threshold),
            status: Set(CampaignStatus::Draft),
            status_reason: Set(None),
            dispatch_token: Set(None),
            locked_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            started_at: Set(None),
            completed_at: Set(None),
        };
        let txn = crate::db::begin_write(db).await?;
        let created = model.insert(&txn).await?;
        txn.commit().await?;
        Ok(created)
    }

    pub async fn get(&self, workspace_id: Uuid, id: Uuid) -> Result<campaign::Model> {
        find_in_workspace!(&self.services.db, campaign, workspace_id, id, "campaign")
    }

    /// The workspace's campaigns, oldest first, optionally in one state.
    pub async fn list(
        &self,
        workspace_id: Uuid,
        status: Option<CampaignStatus>,
        page: PageRequest,
    ) -> Result<Page<campaign::Model>> {
        let mut select =
            campaign::Entity::find().filter(campaign::Column::WorkspaceId.eq(workspace_id));
        if let Some(status) = status {
            select = select.filter(campaign::Column::Status.eq(status));
        }
        paginate(&self.services.db, select, campaign::Column::Id, page).await
    }

    /// A campaign's recipients in the order they are sent, optionally in one state.
    pub async fn recipients(
        &self,
        campaign: &campaign::Model,
        status: Option<RecipientStatus>,
        page: PageRequest,
    ) -> Result<Page<campaign_recipient::Model>> {
        let mut select = campaign_recipient::Entity::find()
            .filter(campaign_recipient::Column::CampaignId.eq(campaign.id));
        if let Some(status) = status {
            select = select.filter(campaign_recipient::Column::Status.eq(status));
        }
        paginate(
            &self.services.db,
            select,
            campaign_recipient::Column::Id,
            page,
        )
        .await
    }

    /// Counts the recipients by state, in one query.
    pub async fn progress(&self, campaign_id: Uuid) -> Result<Progress> {
        let rows: Vec<(RecipientStatus, i64)> = campaign_recipient::Entity::find()
            .select_only()
            .column(campaign_recipient::Column::Status)
            .column_as(campaign_recipient::Column::Id.count(), "count")
            .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
            .group_by(campaign_recipient::Column::Status)
            .into_tuple()
            .all(&self.services.db)
            .await?;
        let mut progress = Progress::default();
        for (status, count) in rows {
            progress.add(status, count);
        }
        Ok(progress)
    }

    /// Sends the campaign's message, rendered for the contact with `phone` (or a contact who is
    /// only that number), to that one number. Nothing is recorded on the campaign.
    pub async fn test(&self, workspace_id: Uuid, id: Uuid, phone: &str) -> Result<message::Model> {
        let campaign = self.get(workspace_id, id).await?;
        let to = E164::parse(phone).map_err(|e| Error::phone("phone", e))?;
        let found = contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(workspace_id))
            .filter(contact::is_customer(&to))
            .one(&self.services.db)
            .await?;
        let context = match &found {
            Some(contact) => self.context(contact).await?,
            None => {
                json!({"contact": {"phone": to.as_str(), "name": null, "attributes": {}, "tags": []}})
            }
        };
        let templates = self.services.sandbox.for_workspace(workspace_id);
        let variables = Variables::of_campaign(&campaign)?
            .render(&templates, &context)
            .await
            .map_err(|e| e.on_field("variables"))?;
        self.services
            .messaging()
            .send_template(
                workspace_id,
                SendTemplate {
                    sender_id: campaign.sender_id,
                    template: TemplateRef::Id(campaign.template_id),
                    to: to.as_str().to_owned(),
                    recipient_name: None,
                    variables: variables.positional,
                    named_variables: variables.named,
                    parameters: variables.parameters,
                    idempotency_key: None,
                },
            )
            .await
    }

    /// What a campaign's variables see of a contact.
    async fn context(&self, contact: &contact::Model) -> Result<Value> {
        let tags = self.services.contacts().tags(contact.id).await?;
        Ok(json!({"contact": {
            "id": contact.id, "phone": contact.phone, "name": contact.name,
            "attributes": contact.attributes, "tags": tags,
        }}))
    }

    /// Tells subscribers to read the campaign's counts again. Only subscriptions listen, so it
    /// goes straight to the bus (no webhooks, no flow triggers).
    pub(crate) async fn changed(&self, workspace_id: Uuid, campaign_id: Uuid) {
        self.services
            .events
            .publish(Event::new(
                workspace_id,
                EventPayload::CampaignChanged(CampaignChanged { campaign_id }),
            ))
            .await;
    }
}

/// An enum as the API writes it (`SCHEDULED`, `SKIPPED_OPTED_OUT`), for messages to users.
fn wire_name(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Runs `f` and logs instead of failing: feedback must never undo the event that caused it.
pub(crate) async fn logged<F: std::future::Future<Output = Result<()>>>(what: &str, f: F) {
    if let Err(error) = f.await {
        tracing::error!(%error, "{what}");
    }
}
