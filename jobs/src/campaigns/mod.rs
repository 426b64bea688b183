//! Campaigns: one approved template to many contacts, made safe. A campaign is checked when it
//! is created (`setup`), freezes its audience into one recipient row per contact when it starts,
//! and is sent by one dispatcher job at a time (`dispatch`) at its pace and inside its send
//! window. Delivery reports, replies and the sender's health feed back into it (`feedback`),
//! and the safety rules pause it.

pub mod dispatch;
pub mod feedback;
pub mod setup;
pub mod window;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    E164, campaign, campaign_recipient, contact,
    enums::{CampaignStatus, RecipientStatus},
    message,
};

use crate::{
    Services,
    error::{Error, Result},
    events::{CampaignChanged, CampaignPaused, Event, EventPayload},
    messaging::{SendTemplate, TemplateRef},
    pagination::{Page, PageRequest, paginate},
    services::find_in_workspace,
};
pub use setup::{Audience, AudienceFilter, NewCampaign, Variables};

/// Recipients written per statement when a campaign starts.
const RECIPIENT_BATCH: usize = 500;

/// The job that sends a campaign; `token` must still be the campaign's dispatch token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchCampaign {
    pub campaign_id: Uuid,
    pub token: Uuid,
}

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
        let checked = setup::check(&input)?;
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
            .filter(contact::Column::Phone.eq(to.as_str()))
            .one(&self.services.db)
            .await?;
        let context = match &found {
            Some(contact) => self.context(contact).await?,
            None => {
                json!({"contact": {"phone": to.as_str(), "name": null, "attributes": {}, "tags": []}})
            }
        };
        let variables = Variables::from_json(&campaign.variables)?
            .render(&context)
            .map_err(|message| Error::field("variables", message))?;
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

    /// Freezes the audience into PENDING recipients and hands the campaign to a dispatcher.
    pub async fn start(&self, workspace_id: Uuid, id: Uuid) -> Result<campaign::Model> {
        let campaign = self.get(workspace_id, id).await?;
        expect_status(&campaign, &[CampaignStatus::Draft], "started")?;
        let contact_ids = self.audience_ids(&campaign).await?;
        if contact_ids.is_empty() {
            return Err(Error::field(
                "audience",
                "matches no contacts: import or tag contacts first",
            ));
        }
        let token = Uuid::now_v7();
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.services.db).await?;
        let moved = campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Scheduled),
            )
            .col_expr(
                campaign::Column::StatusReason,
                Expr::value(waiting_reason(&campaign)?),
            )
            .col_expr(campaign::Column::DispatchToken, Expr::value(token))
            .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
            .filter(campaign::Column::Id.eq(campaign.id))
            .filter(campaign::Column::Status.eq(CampaignStatus::Draft))
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            return Err(not_now("started"));
        }
        for chunk in contact_ids.chunks(RECIPIENT_BATCH) {
            let rows = chunk
                .iter()
                .map(|(contact_id, phone)| campaign_recipient::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    workspace_id: Set(workspace_id),
                    campaign_id: Set(campaign.id),
                    contact_id: Set(*contact_id),
                    phone: Set(phone.clone()),
                    status: Set(RecipientStatus::Pending),
                    message_id: Set(None),
                    conversation_id: Set(None),
                    error_code: Set(None),
                    error_message: Set(None),
                    sent_at: Set(None),
                    updated_at: Set(now),
                });
            campaign_recipient::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        self.dispatch_soon(campaign.id, token).await?;
        self.changed(workspace_id, campaign.id).await;
        self.get(workspace_id, id).await
    }

    /// The audience's contacts (id and phone), in creation order, each once.
    async fn audience_ids(&self, campaign: &campaign::Model) -> Result<Vec<(Uuid, String)>> {
        let audience: Audience = serde_json::from_value(campaign.audience.clone())
            .map_err(|e| Error::Internal(format!("stored audience is malformed: {e}")))?;
        let select = match &audience {
            Audience::ContactIds(ids) => {
                let mut rows = Vec::with_capacity(ids.len());
                // Bounded IN lists: databases cap the number of parameters of one statement.
                for chunk in ids.chunks(RECIPIENT_BATCH) {
                    rows.extend(
                        contact::Entity::find()
                            .select_only()
                            .columns([contact::Column::Id, contact::Column::Phone])
                            .filter(contact::Column::WorkspaceId.eq(campaign.workspace_id))
                            .filter(contact::Column::Id.is_in(chunk.iter().copied()))
                            .into_tuple::<(Uuid, String)>()
                            .all(&self.services.db)
                            .await?,
                    );
                }
                rows.sort();
                rows.dedup();
                return Ok(rows);
            }
            Audience::Filter(filter) => self
                .services
                .contacts()
                .matching(campaign.workspace_id, &filter.contact_filter())?,
        };
        use sea_orm::QueryOrder;
        Ok(select
            .select_only()
            .columns([contact::Column::Id, contact::Column::Phone])
            .order_by_asc(contact::Column::Id)
            .into_tuple::<(Uuid, String)>()
            .all(&self.services.db)
            .await?)
    }

    /// A user stops the campaign for now; recipients not yet sent wait for `resume`.
    pub async fn pause(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        reason: Option<String>,
    ) -> Result<campaign::Model> {
        let campaign = self.get(workspace_id, id).await?;
        expect_status(
            &campaign,
            &[CampaignStatus::Scheduled, CampaignStatus::Running],
            "paused",
        )?;
        let reason = reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "paused by a user".into());
        if !self.pause_with(&campaign, reason, false).await? {
            return Err(not_now("paused"));
        }
        self.get(workspace_id, id).await
    }

    /// Pauses a SCHEDULED or RUNNING campaign and says so; false when it was in neither state
    /// (someone else paused, cancelled or finished it first).
    pub(crate) async fn pause_with(
        &self,
        campaign: &campaign::Model,
        reason: String,
        automatic: bool,
    ) -> Result<bool> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let moved = campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Paused),
            )
            .col_expr(campaign::Column::StatusReason, Expr::value(reason.clone()))
            .col_expr(campaign::Column::DispatchToken, Expr::value(None::<Uuid>))
            .col_expr(campaign::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(campaign::Column::Id.eq(campaign.id))
            .filter(
                campaign::Column::Status
                    .is_in([CampaignStatus::Scheduled, CampaignStatus::Running]),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        if moved.rows_affected == 0 {
            return Ok(false);
        }
        if automatic {
            tracing::warn!(campaign_id = %campaign.id, %reason, "campaign paused");
        }
        let event = CampaignPaused {
            campaign_id: campaign.id,
            campaign_name: campaign.name.clone(),
            sender_id: campaign.sender_id,
            reason,
            automatic,
        };
        // Boxed: emitting feeds the event back to `on_event`, which may pause campaigns.
        Box::pin(self.services.emit(Event::new(
            campaign.workspace_id,
            EventPayload::CampaignPaused(event),
        )))
        .await;
        self.changed(campaign.workspace_id, campaign.id).await;
        Ok(true)
    }

    /// Goes on where a paused campaign stopped; nobody already sent is sent again.
    pub async fn resume(&self, workspace_id: Uuid, id: Uuid) -> Result<campaign::Model> {
        let campaign = self.get(workspace_id, id).await?;
        expect_status(&campaign, &[CampaignStatus::Paused], "resumed")?;
        let token = Uuid::now_v7();
        let txn = crate::db::begin_write(&self.services.db).await?;
        let moved = campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Scheduled),
            )
            .col_expr(
                campaign::Column::StatusReason,
                Expr::value(waiting_reason(&campaign)?),
            )
            .col_expr(campaign::Column::DispatchToken, Expr::value(token))
            .col_expr(campaign::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(campaign::Column::Id.eq(campaign.id))
            .filter(campaign::Column::Status.eq(CampaignStatus::Paused))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        if moved.rows_affected == 0 {
            return Err(not_now("resumed"));
        }
        self.dispatch_soon(campaign.id, token).await?;
        self.changed(workspace_id, campaign.id).await;
        self.get(workspace_id, id).await
    }

    /// Stops the campaign for good; recipients not yet sent are SKIPPED_CANCELLED.
    pub async fn cancel(&self, workspace_id: Uuid, id: Uuid) -> Result<campaign::Model> {
        let campaign = self.get(workspace_id, id).await?;
        let open = [
            CampaignStatus::Draft,
            CampaignStatus::Scheduled,
            CampaignStatus::Running,
            CampaignStatus::Paused,
        ];
        expect_status(&campaign, &open, "cancelled")?;
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.services.db).await?;
        let moved = campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Cancelled),
            )
            .col_expr(campaign::Column::DispatchToken, Expr::value(None::<Uuid>))
            .col_expr(campaign::Column::CompletedAt, Expr::value(now))
            .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
            .filter(campaign::Column::Id.eq(campaign.id))
            .filter(campaign::Column::Status.is_in(open))
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            return Err(not_now("cancelled"));
        }
        campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::Status,
                Expr::value(RecipientStatus::SkippedCancelled),
            )
            .col_expr(campaign_recipient::Column::UpdatedAt, Expr::value(now))
            .filter(campaign_recipient::Column::CampaignId.eq(campaign.id))
            .filter(campaign_recipient::Column::Status.eq(RecipientStatus::Pending))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.changed(workspace_id, campaign.id).await;
        self.get(workspace_id, id).await
    }

    async fn dispatch_soon(&self, campaign_id: Uuid, token: Uuid) -> Result<()> {
        self.services
            .jobs
            .system
            .push(
                crate::queue::SystemJob::DispatchCampaign(DispatchCampaign { campaign_id, token }),
                None,
            )
            .await
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

/// Why a campaign that may not send now waits, as its status reason; `None` when it may.
fn waiting_reason(campaign: &campaign::Model) -> Result<Option<String>> {
    Ok(dispatch::closed_until(campaign, Utc::now())?.map(|(opens, why)| waiting_text(opens, why)))
}

fn waiting_text(opens: chrono::DateTime<Utc>, why: &str) -> String {
    format!(
        "{why}: sends from {}",
        opens.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

fn status_name(status: CampaignStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn expect_status(campaign: &campaign::Model, allowed: &[CampaignStatus], what: &str) -> Result<()> {
    if allowed.contains(&campaign.status) {
        return Ok(());
    }
    let allowed: Vec<String> = allowed.iter().map(|s| status_name(*s)).collect();
    Err(Error::field(
        "status",
        format!(
            "the campaign is {}; only a {} campaign can be {what}",
            status_name(campaign.status),
            allowed.join(" or ")
        ),
    ))
}

/// Someone else changed the campaign's state between our read and our write.
fn not_now(what: &str) -> Error {
    Error::field(
        "status",
        format!("the campaign changed state meanwhile and cannot be {what} now; read it again"),
    )
}

/// Runs `f` and logs instead of failing: feedback must never undo the event that caused it.
pub(crate) async fn logged<F: std::future::Future<Output = Result<()>>>(what: &str, f: F) {
    if let Err(error) = f.await {
        tracing::error!(%error, "{what}");
    }
}
