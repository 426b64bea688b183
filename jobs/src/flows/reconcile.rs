//! The reconciler, the safety net that durable engines keep beside their queue: once per tick
//! (claimed by one process of all), it looks for runs that are due but that no job is going to
//! wake, and queues a wake-up for each. The engine treats every job as a poke that does what is
//! due, so a wake-up queued beside a live one does no harm, and a step with side effects runs
//! at most once per attempt whoever pokes it (its idempotency key).
//!
//! Each run found is a lost job, which is a bug: they are logged and counted in
//! `waflow_flow_runs_reconciled_total` so that they get noticed, not silently mended.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;
use waflow_entities::{enums::RunStatus, flow_run};

use super::{FlowService, state::RunState};
use crate::error::Result;

/// At most this many runs are woken per tick; the next tick takes the rest.
const BATCH: u64 = 500;

impl FlowService<'_> {
    /// Queues a wake-up for every unfinished run that is overdue by more than the grace and
    /// the queue's backlog, held by no worker, and not waiting for an earlier run of its key:
    /// a parked run whose wake time has passed, a running one whose worker's lease expired, a
    /// queued one that was never started. Answers their ids.
    pub async fn reconcile_runs(&self) -> Result<Vec<Uuid>> {
        let services = self.services;
        let backlog = services.jobs.flows.stats("flows").await?.oldest_ready_age;
        let now = Utc::now();
        // A run's job waiting in the queue is due no later than a second after the run (the
        // queue counts whole seconds): a run overdue by less than the backlog and that second
        // may be waiting for it.
        let overdue = services.runs.reconcile_grace + backlog + Duration::from_secs(1);
        let overdue = chrono::Duration::from_std(overdue).unwrap_or(chrono::Duration::MAX);
        let cutoff = now - overdue;
        let lost = flow_run::Entity::find()
            .filter(flow_run::Column::Status.is_in([
                RunStatus::Queued,
                RunStatus::Running,
                RunStatus::Waiting,
            ]))
            .filter(
                Condition::any()
                    .add(flow_run::Column::LockedUntil.is_null())
                    .add(flow_run::Column::LockedUntil.lt(now)),
            )
            .filter(
                Condition::any()
                    .add(flow_run::Column::WakeAt.lt(cutoff))
                    .add(
                        Condition::all()
                            .add(flow_run::Column::WakeAt.is_null())
                            .add(flow_run::Column::Status.ne(RunStatus::Waiting))
                            .add(flow_run::Column::UpdatedAt.lt(cutoff)),
                    ),
            )
            // Leaves out queued runs that wait, rightly, for an earlier run of their key.
            .filter(sea_orm::sea_query::Expr::cust(format!(
                "NOT {}",
                super::lease::BLOCKED_BY_EARLIER
            )))
            .order_by_asc(flow_run::Column::Id)
            .limit(BATCH)
            .all(&services.db)
            .await?;
        let mut woken = Vec::with_capacity(lost.len());
        for run in lost {
            let token = serde_json::from_value::<RunState>(run.state.clone())
                .ok()
                .and_then(|state| state.wake)
                .map(|wake| wake.token);
            super::runs::poke(services, run.id, token).await?;
            let since = run.wake_at.unwrap_or(run.updated_at);
            let status: &'static str = match run.status {
                RunStatus::Queued => "queued",
                RunStatus::Running => "running",
                _ => "waiting",
            };
            metrics::counter!("waflow_flow_runs_reconciled_total", "status" => status).increment(1);
            tracing::warn!(
                run_id = %run.id,
                status,
                overdue_seconds = (now - since).num_seconds(),
                "a flow run had no live job and was woken by the reconciler: a job was lost, \
                 which is a bug worth reporting"
            );
            woken.push(run.id);
        }
        Ok(woken)
    }
}
