//! A campaign's life after creation: start (the audience frozen into recipients), pause (by a
//! user or a safety rule), resume and cancel. Each change is one conditional update, so two
//! concurrent changes cannot both win, and a new dispatch token retires the old dispatcher.

use chrono::Utc;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Expr,
};
use uuid::Uuid;
use waflow_entities::{
    campaign, campaign_recipient, contact,
    enums::{CampaignStatus, RecipientStatus},
};

use super::{Audience, CampaignService, DispatchCampaign, RECIPIENT_BATCH, dispatch};
use crate::{
    error::{Error, Result},
    events::{CampaignPaused, Event, EventPayload},
};

impl CampaignService<'_> {
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
        if !schedule(&txn, &campaign, CampaignStatus::Draft, token).await? {
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
                            .filter(crate::db::one_of(
                                self.services.db.get_database_backend(),
                                contact::Column::Id,
                                chunk.to_vec(),
                            ))
                            // Campaigns reach numbers; a username customer has none to reach.
                            .filter(contact::Column::Phone.is_not_null())
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
        Ok(select
            .select_only()
            .columns([contact::Column::Id, contact::Column::Phone])
            .filter(contact::Column::Phone.is_not_null())
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
        let scheduled = schedule(&txn, &campaign, CampaignStatus::Paused, token).await?;
        txn.commit().await?;
        if !scheduled {
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
}

/// Moves the campaign from `from` under a new dispatch token (retiring any dispatcher of an
/// earlier one): RUNNING when it may send now, else SCHEDULED with the reason it waits. False
/// when it had left `from` meanwhile.
async fn schedule(
    txn: &sea_orm::DatabaseTransaction,
    campaign: &campaign::Model,
    from: CampaignStatus,
    token: Uuid,
) -> Result<bool> {
    let now = Utc::now();
    let reason = waiting_reason(campaign)?;
    let status = match reason {
        Some(_) => CampaignStatus::Scheduled,
        None => CampaignStatus::Running,
    };
    let started_at = match (campaign.started_at, status) {
        (None, CampaignStatus::Running) => Some(now),
        (started_at, _) => started_at,
    };
    let moved = campaign::Entity::update_many()
        .col_expr(campaign::Column::Status, Expr::value(status))
        .col_expr(campaign::Column::StatusReason, Expr::value(reason))
        .col_expr(campaign::Column::StartedAt, Expr::value(started_at))
        .col_expr(campaign::Column::DispatchToken, Expr::value(token))
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::Id.eq(campaign.id))
        .filter(campaign::Column::Status.eq(from))
        .exec(txn)
        .await?;
    Ok(moved.rows_affected == 1)
}

/// Why a campaign that may not send now waits, as its status reason; `None` when it may.
fn waiting_reason(campaign: &campaign::Model) -> Result<Option<String>> {
    Ok(dispatch::SendSchedule::of(campaign)?
        .closed_until(Utc::now())
        .map(|(opens, why)| waiting_text(opens, why)))
}

pub(super) fn waiting_text(opens: chrono::DateTime<Utc>, why: &str) -> String {
    format!(
        "{why}: sends from {}",
        opens.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

fn expect_status(campaign: &campaign::Model, allowed: &[CampaignStatus], what: &str) -> Result<()> {
    if allowed.contains(&campaign.status) {
        return Ok(());
    }
    let allowed: Vec<String> = allowed.iter().map(|s| super::wire_name(*s)).collect();
    Err(Error::field(
        "status",
        format!(
            "the campaign is {}; only a {} campaign can be {what}",
            super::wire_name(campaign.status),
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
