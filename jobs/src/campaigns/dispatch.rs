//! Dispatching a campaign. One dispatcher at a time: the job carries the campaign's dispatch token
//! (a pause, resume or cancel retires it) and holds a lease on the campaign row while it sends,
//! renewed as it goes, so a dead worker's job that apalis hands out again waits for the lease to
//! run out instead of sending beside a live one. A dispatcher sends for a slice of time and then
//! queues its successor, so a long campaign never pins a worker and a closed window or a pause
//! takes effect between two sends. Each send's idempotency key is the campaign and contact:
//! whatever happens to the dispatcher, nobody gets the message twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;
use waflow_entities::{campaign, enums::CampaignStatus};

use super::{
    CampaignService, DispatchCampaign,
    sending::SliceEnd,
    window::{SendWindow, SendWindowSpec, next_send_time, parse_zone},
};
use crate::{
    error::{Error, Result},
    queue::SystemJob,
};

/// How long a dispatcher's claim on a campaign lasts without renewal.
const LEASE: chrono::Duration = chrono::Duration::seconds(15);
pub(super) const RENEW_AFTER: Duration = Duration::from_secs(5);

pub(super) fn is_current(campaign: &campaign::Model, token: Uuid) -> bool {
    campaign.dispatch_token == Some(token)
        && matches!(
            campaign.status,
            CampaignStatus::Scheduled | CampaignStatus::Running
        )
}

/// When a campaign may send: its start, window and timezone, parsed once. They cannot change
/// after creation, so a dispatcher reads them once per slice, not once per send.
pub(super) struct SendSchedule {
    start_at: Option<DateTime<Utc>>,
    window: Option<SendWindow>,
    zone: chrono_tz::Tz,
}

impl SendSchedule {
    pub(super) fn of(campaign: &campaign::Model) -> Result<Self> {
        let window = match &campaign.send_window {
            Some(json) => {
                let spec: SendWindowSpec = serde_json::from_value(json.clone()).map_err(|e| {
                    Error::Internal(format!("stored send window is malformed: {e}"))
                })?;
                Some(SendWindow::parse(&spec)?)
            }
            None => None,
        };
        Ok(Self {
            start_at: campaign.start_at,
            window,
            zone: parse_zone(&campaign.timezone)?,
        })
    }

    /// When the campaign may not send at `now`: until when, and why.
    pub(super) fn closed_until(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, &'static str)> {
        next_send_time(self.start_at, self.window.as_ref(), self.zone, now)
    }
}

impl CampaignService<'_> {
    /// Runs one dispatcher job: sends for a slice, then queues what comes next.
    pub async fn dispatch(&self, job: &DispatchCampaign) -> Result<()> {
        let db = &self.services.db;
        let Some(campaign) = campaign::Entity::find_by_id(job.campaign_id)
            .one(db)
            .await?
        else {
            return Ok(());
        };
        if !is_current(&campaign, job.token) {
            return Ok(());
        }
        if let Some((opens, why)) = SendSchedule::of(&campaign)?.closed_until(Utc::now()) {
            return self.wait_until(&campaign, job, opens, why).await;
        }
        if !self.claim(&campaign, job.token).await? {
            // The lease is held: by a dispatcher finishing its slice, or by a dead one whose
            // lease runs out soon. Look again shortly; only the current chain does.
            return self.next(job, Duration::from_secs(1)).await;
        }
        let end = self.send_slice(&campaign, job.token).await;
        self.release(campaign.id, job.token).await?;
        self.changed(campaign.workspace_id, campaign.id).await;
        match end? {
            SliceEnd::Finished => self.complete(&campaign, job.token).await,
            SliceEnd::Yield => self.next(job, Duration::ZERO).await,
            SliceEnd::Stopped => Ok(()),
            SliceEnd::Closed(opens, why) => self.wait_until(&campaign, job, opens, why).await,
        }
    }

    async fn next(&self, job: &DispatchCampaign, after: Duration) -> Result<()> {
        self.services
            .jobs
            .system_after(SystemJob::DispatchCampaign(job.clone()), after)
            .await
    }

    /// SCHEDULED until `opens`, with the reason shown to users; the job sleeps in the queue.
    async fn wait_until(
        &self,
        campaign: &campaign::Model,
        job: &DispatchCampaign,
        opens: DateTime<Utc>,
        why: &str,
    ) -> Result<()> {
        let reason = super::lifecycle::waiting_text(opens, why);
        let txn = crate::db::begin_write(&self.services.db).await?;
        let moved = campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Scheduled),
            )
            .col_expr(campaign::Column::StatusReason, Expr::value(reason))
            .col_expr(campaign::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(campaign::Column::Id.eq(campaign.id))
            .filter(campaign::Column::DispatchToken.eq(job.token))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        if moved.rows_affected == 1 {
            self.changed(campaign.workspace_id, campaign.id).await;
            let wait = (opens - Utc::now()).to_std().unwrap_or_default();
            self.next(job, wait.max(Duration::from_secs(1))).await?;
        }
        Ok(())
    }

    /// Takes the lease (and the RUNNING state) if no live dispatcher holds it.
    async fn claim(&self, campaign: &campaign::Model, token: Uuid) -> Result<bool> {
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.services.db).await?;
        let claimed = campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Running),
            )
            .col_expr(campaign::Column::StatusReason, Expr::value(None::<String>))
            .col_expr(campaign::Column::LockedUntil, Expr::value(now + LEASE))
            .col_expr(
                campaign::Column::StartedAt,
                Expr::value(campaign.started_at.unwrap_or(now)),
            )
            .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
            .filter(campaign::Column::Id.eq(campaign.id))
            .filter(campaign::Column::DispatchToken.eq(token))
            .filter(
                campaign::Column::Status
                    .is_in([CampaignStatus::Scheduled, CampaignStatus::Running]),
            )
            .filter(
                sea_orm::Condition::any()
                    .add(campaign::Column::LockedUntil.is_null())
                    .add(campaign::Column::LockedUntil.lt(now)),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        let claimed = claimed.rows_affected == 1;
        if claimed && campaign.status == CampaignStatus::Scheduled {
            // Its send window opened: subscribers see it RUNNING.
            self.changed(campaign.workspace_id, campaign.id).await;
        }
        Ok(claimed)
    }

    /// Extends the lease; false when this dispatcher no longer holds the campaign.
    pub(super) async fn renew(&self, campaign_id: Uuid, token: Uuid) -> Result<bool> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let renewed = campaign::Entity::update_many()
            .col_expr(
                campaign::Column::LockedUntil,
                Expr::value(Utc::now() + LEASE),
            )
            .filter(campaign::Column::Id.eq(campaign_id))
            .filter(campaign::Column::DispatchToken.eq(token))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(renewed.rows_affected == 1)
    }

    /// Gives the lease back, whoever's token the campaign has now (a successor may wait on it).
    async fn release(&self, campaign_id: Uuid, token: Uuid) -> Result<()> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        campaign::Entity::update_many()
            .col_expr(
                campaign::Column::LockedUntil,
                Expr::value(None::<DateTime<Utc>>),
            )
            .filter(campaign::Column::Id.eq(campaign_id))
            .filter(
                sea_orm::Condition::any()
                    .add(campaign::Column::DispatchToken.eq(token))
                    .add(campaign::Column::DispatchToken.is_null()),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn complete(&self, campaign: &campaign::Model, token: Uuid) -> Result<()> {
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.services.db).await?;
        campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Completed),
            )
            .col_expr(campaign::Column::DispatchToken, Expr::value(None::<Uuid>))
            .col_expr(campaign::Column::CompletedAt, Expr::value(now))
            .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
            .filter(campaign::Column::Id.eq(campaign.id))
            .filter(campaign::Column::DispatchToken.eq(token))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.changed(campaign.workspace_id, campaign.id).await;
        Ok(())
    }
}
