//! The concurrency-key index ends with the run's id, so that the two questions the engine asks
//! of a key are one index range each, however many runs of the key are queued: "is an earlier
//! run unfinished?" (`runs::BLOCKED_BY_EARLIER`) and "which queued run is next?" (in id order).
//! With `(concurrency_key, status)` alone, the next run meant sorting every queued run of the
//! key, once per run that ended: quadratic in a busy customer's backlog.

use sea_orm_migration::prelude::*;

use crate::m0006_flows::FlowRun;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &[&str] = &["concurrency_key", "status"];
const NEW: &[&str] = &["concurrency_key", "status", "id"];

fn name(columns: &[&str]) -> String {
    format!("idx_flow_run_{}", columns.join("_"))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(crate::index(FlowRun::Table, "flow_run", NEW, false))
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(name(OLD))
                    .table(FlowRun::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(crate::index(FlowRun::Table, "flow_run", OLD, false))
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(name(NEW))
                    .table(FlowRun::Table)
                    .to_owned(),
            )
            .await
    }
}
