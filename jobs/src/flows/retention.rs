//! Pruning old runs: a busy workspace writes a run and its step rows for every trigger, and
//! nobody reads last year's. With `WAFLOW_RUN_RETENTION_DAYS` set, finished runs (succeeded,
//! failed, cancelled) older than that are deleted with their steps, in small batches so the
//! database never holds a long lock; running and waiting runs are never touched. Step rows go
//! with their run (`step_run.run_id` cascades).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;
use waflow_entities::{enums::RunStatus, flow_run};

use super::FlowService;
use crate::error::Result;

const FINISHED: [RunStatus; 3] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
];
/// Runs deleted per transaction.
const BATCH: u64 = 500;

impl FlowService<'_> {
    /// Deletes the runs that finished before `cutoff`, and their steps; returns how many runs.
    pub async fn prune_finished_runs(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let db = &self.services.db;
        let mut pruned = 0;
        loop {
            let ids: Vec<Uuid> = flow_run::Entity::find()
                .select_only()
                .column(flow_run::Column::Id)
                .filter(flow_run::Column::Status.is_in(FINISHED))
                .filter(flow_run::Column::FinishedAt.lt(cutoff))
                .order_by_asc(flow_run::Column::Id)
                .limit(BATCH)
                .into_tuple()
                .all(db)
                .await?;
            if ids.is_empty() {
                return Ok(pruned);
            }
            // One statement, so a run retried meanwhile (running again) is left alone; its steps
            // go with it through the foreign key's cascade.
            let txn = crate::db::begin_write(db).await?;
            let deleted = flow_run::Entity::delete_many()
                .filter(crate::db::one_of(
                    txn.get_database_backend(),
                    flow_run::Column::Id,
                    ids,
                ))
                .filter(flow_run::Column::Status.is_in(FINISHED))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            pruned += deleted.rows_affected;
        }
    }
}
