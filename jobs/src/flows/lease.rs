//! A job's hold on a flow run, so that one worker at a time runs it: taken when the run's
//! lease is free or expired, renewed while the job works (`engine::execute`), given up when the
//! run parks or ends (in the same statement that saves it, `runs::save`) or otherwise at the
//! end of the job, and expiring by itself if the worker dies.

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, Statement,
    sea_query::Expr,
};
use uuid::Uuid;
use waflow_entities::flow_run;

use super::runs::BLOCKED_BY_EARLIER;
use crate::{Services, error::Result};

/// A job's hold on a run: the row's `locked_by` names this job until `locked_until`. Renewal,
/// release and every save check the name, so a worker that stalled past its lease and lost the
/// run to another can no longer write to it.
pub(crate) struct Lease {
    pub(crate) run_id: Uuid,
    pub(crate) holder: Uuid,
}

/// A run this job now holds, as it was when taken.
pub(crate) struct Taken {
    pub(crate) lease: Lease,
    pub(crate) run: flow_run::Model,
    /// A queued run that must wait for an earlier run of its concurrency key
    /// (`runs::BLOCKED_BY_EARLIER`).
    pub(crate) blocked: bool,
}

/// Takes the lease of an unfinished run and reads it, with whether an earlier run of its key
/// blocks it, in one statement: the engine's only read of a run it starts.
const TAKE: &str = "UPDATE flow_run SET locked_until = $1, locked_by = $2
    WHERE id = $3
      AND status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
      AND (locked_until IS NULL OR locked_until < $4)
    RETURNING *, CASE WHEN BLOCKED THEN 1 ELSE 0 END AS blocked_by_earlier";

impl Lease {
    /// The run, held by this job; `None` when it is finished, held by another job, or gone.
    pub(super) async fn take(services: &Services, run_id: Uuid) -> Result<Option<Taken>> {
        let now = Utc::now();
        let holder = Uuid::now_v7();
        let db = &services.db;
        let sql = TAKE.replace("BLOCKED", BLOCKED_BY_EARLIER);
        let statement = Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [
                (now + services.runs.lease).into(),
                holder.into(),
                run_id.into(),
                now.into(),
            ],
        );
        let Some(row) = db.query_one_raw(statement).await? else {
            return Ok(None);
        };
        let run = flow_run::Model::from_query_result(&row, "")?;
        let blocked: i32 = row.try_get("", "blocked_by_earlier")?;
        Ok(Some(Taken {
            lease: Lease { run_id, holder },
            run,
            blocked: blocked != 0,
        }))
    }

    pub(super) async fn extend(&self, services: &Services) -> Result<()> {
        flow_run::Entity::update_many()
            .col_expr(
                flow_run::Column::LockedUntil,
                Expr::value(Utc::now() + services.runs.lease),
            )
            .filter(flow_run::Column::Id.eq(self.run_id))
            .filter(flow_run::Column::LockedBy.eq(self.holder))
            .exec(&services.db)
            .await?;
        Ok(())
    }

    pub(super) async fn release(&self, services: &Services) -> Result<()> {
        flow_run::Entity::update_many()
            .col_expr(
                flow_run::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(
                flow_run::Column::LockedBy,
                Expr::value(Option::<Uuid>::None),
            )
            .filter(flow_run::Column::Id.eq(self.run_id))
            .filter(flow_run::Column::LockedBy.eq(self.holder))
            .exec(&services.db)
            .await?;
        Ok(())
    }
}
