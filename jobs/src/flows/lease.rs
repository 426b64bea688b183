//! A job's hold on a flow run, so that one worker at a time runs it: taken when the run's
//! lease is free or expired, renewed while the job works (`engine::execute`), released at the
//! end, and expiring by itself if the worker dies.

use chrono::Utc;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;
use waflow_entities::flow_run;

use crate::{Services, error::Result};

/// A job's hold on a run: the row's `locked_by` names this job until `locked_until`. Renewal,
/// release and every save check the name, so a worker that stalled past its lease and lost the
/// run to another can no longer write to it.
pub(crate) struct Lease {
    pub(crate) run_id: Uuid,
    pub(crate) holder: Uuid,
}

impl Lease {
    pub(super) async fn take(services: &Services, run_id: Uuid) -> Result<Option<Lease>> {
        let now = Utc::now();
        let holder = Uuid::now_v7();
        let taken = flow_run::Entity::update_many()
            .col_expr(
                flow_run::Column::LockedUntil,
                Expr::value(now + services.runs.lease),
            )
            .col_expr(flow_run::Column::LockedBy, Expr::value(holder))
            .filter(flow_run::Column::Id.eq(run_id))
            .filter(
                Condition::any()
                    .add(flow_run::Column::LockedUntil.is_null())
                    .add(flow_run::Column::LockedUntil.lt(now)),
            )
            .exec(&services.db)
            .await?
            .rows_affected;
        Ok((taken == 1).then_some(Lease { run_id, holder }))
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
