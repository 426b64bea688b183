//! What durable runs need to survive any crash: `wake_at`, the time a parked run is due (a copy
//! of its state's wake-up, so the reconciler finds overdue runs with an index instead of reading
//! every run's JSON), and `locked_by`, the holder of the run's lease, so that a worker that lost
//! its lease (it stalled past it) can no longer save over the worker that took the run over.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

use crate::m0006_flows::FlowRun;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Column {
    WakeAt,
    LockedBy,
}

const INDEX: &str = "idx_flow_run_status_wake_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            timestamp_with_time_zone_null(Column::WakeAt),
            uuid_null(Column::LockedBy),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(FlowRun::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // Runs parked before this migration keep their wake-up in their state only: copy it, or
        // the reconciler would take them for overdue. SQLite stores times as `+00:00` text.
        let backfill = match manager.get_database_backend() {
            DbBackend::Postgres => {
                "UPDATE flow_run SET wake_at = (state->'wake'->>'at')::timestamptz
                 WHERE status IN ('QUEUED', 'RUNNING', 'WAITING')
                   AND state->'wake'->>'at' IS NOT NULL"
            }
            _ => {
                "UPDATE flow_run SET wake_at = replace(json_extract(state, '$.wake.at'), 'Z', '+00:00')
                 WHERE status IN ('QUEUED', 'RUNNING', 'WAITING')
                   AND json_extract(state, '$.wake.at') IS NOT NULL"
            }
        };
        manager
            .get_connection()
            .execute_unprepared(backfill)
            .await?;
        manager
            .create_index(crate::index(
                FlowRun::Table,
                "flow_run",
                &["status", "wake_at"],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(FlowRun::Table).to_owned())
            .await?;
        for column in [Column::LockedBy, Column::WakeAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(FlowRun::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
