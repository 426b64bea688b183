//! What running flows needs beyond m0006's tables: the trigger index (one row per live flow, so
//! an event finds its flows without reading every flow), a lease and a parking spot on runs, and
//! a flow's error handler and pause reason.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0006_flows::{Flow, FlowRun, FlowVersion};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Column {
    OnErrorFlowId,
    PausedReason,
    LockedUntil,
    WaitingFor,
}

#[derive(DeriveIden, Clone)]
pub enum FlowTrigger {
    Table,
    FlowId,
    WorkspaceId,
    TriggerType,
    SenderId,
    EventName,
    FlowVersionId,
    Trigger,
    NextFireAt,
}

async fn add(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: ColumnDef,
) -> Result<(), DbErr> {
    let mut column = column;
    manager
        .alter_table(
            Table::alter()
                .table(table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await
}

async fn drop(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    column: Column,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add(manager, Flow::Table, uuid_null(Column::OnErrorFlowId)).await?;
        add(manager, Flow::Table, text_null(Column::PausedReason)).await?;
        add(
            manager,
            FlowRun::Table,
            timestamp_with_time_zone_null(Column::LockedUntil),
        )
        .await?;
        add(manager, FlowRun::Table, string_null(Column::WaitingFor)).await?;
        manager
            .create_table(
                Table::create()
                    .table(FlowTrigger::Table)
                    .col(pk_uuid(FlowTrigger::FlowId))
                    .col(uuid(FlowTrigger::WorkspaceId))
                    .col(string(FlowTrigger::TriggerType))
                    .col(uuid_null(FlowTrigger::SenderId))
                    .col(string_null(FlowTrigger::EventName))
                    .col(uuid(FlowTrigger::FlowVersionId))
                    .col(json_binary(FlowTrigger::Trigger))
                    .col(timestamp_with_time_zone_null(FlowTrigger::NextFireAt))
                    .foreign_key(&mut crate::workspace_fk(FlowTrigger::Table))
                    .foreign_key(&mut crate::fk(
                        FlowTrigger::Table,
                        "flow_id",
                        Flow::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut crate::fk(
                        FlowTrigger::Table,
                        "flow_version_id",
                        FlowVersion::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        for (table, name, columns) in [
            (
                FlowTrigger::Table.into_iden(),
                "flow_trigger",
                &["workspace_id", "trigger_type"][..],
            ),
            (
                FlowTrigger::Table.into_iden(),
                "flow_trigger",
                &["next_fire_at"][..],
            ),
            (FlowRun::Table.into_iden(), "flow_run", &["waiting_for"][..]),
        ] {
            manager
                .create_index(crate::index(table, name, columns, false))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_flow_run_waiting_for")
                    .table(FlowRun::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(FlowTrigger::Table).to_owned())
            .await?;
        drop(manager, FlowRun::Table, Column::WaitingFor).await?;
        drop(manager, FlowRun::Table, Column::LockedUntil).await?;
        drop(manager, Flow::Table, Column::PausedReason).await?;
        drop(manager, Flow::Table, Column::OnErrorFlowId).await
    }
}
