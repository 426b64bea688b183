//! Automation flows: an editable draft, immutable published versions, runs pinned to a version,
//! and one row per executed step (the durable record a worker resumes from).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
pub enum Flow {
    Table,
    Id,
    WorkspaceId,
    Name,
    Description,
    Draft,
    Enabled,
    PublishedVersion,
    WebhookSecretEnc,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum FlowVersion {
    Table,
    Id,
    WorkspaceId,
    FlowId,
    Version,
    Definition,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum FlowRun {
    Table,
    Id,
    WorkspaceId,
    FlowId,
    FlowVersionId,
    Status,
    TriggerType,
    TriggerPayload,
    State,
    ConcurrencyKey,
    Error,
    CreatedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum StepRun {
    Table,
    Id,
    WorkspaceId,
    RunId,
    StepId,
    StepType,
    Iteration,
    Attempt,
    Status,
    Input,
    Output,
    Error,
    IdempotencyKey,
    StartedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Flow::Table)
                    .col(pk_uuid(Flow::Id))
                    .col(uuid(Flow::WorkspaceId))
                    .col(string(Flow::Name))
                    .col(text_null(Flow::Description))
                    .col(json_binary(Flow::Draft))
                    .col(boolean(Flow::Enabled))
                    .col(integer_null(Flow::PublishedVersion))
                    .col(text_null(Flow::WebhookSecretEnc))
                    .col(timestamp_with_time_zone(Flow::CreatedAt))
                    .col(timestamp_with_time_zone(Flow::UpdatedAt))
                    .foreign_key(&mut crate::workspace_fk(Flow::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                Flow::Table,
                "flow",
                &["workspace_id", "enabled"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FlowVersion::Table)
                    .col(pk_uuid(FlowVersion::Id))
                    .col(uuid(FlowVersion::WorkspaceId))
                    .col(uuid(FlowVersion::FlowId))
                    .col(integer(FlowVersion::Version))
                    .col(json_binary(FlowVersion::Definition))
                    .col(timestamp_with_time_zone(FlowVersion::CreatedAt))
                    .foreign_key(&mut crate::workspace_fk(FlowVersion::Table))
                    .foreign_key(&mut crate::fk(
                        FlowVersion::Table,
                        "flow_id",
                        Flow::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                FlowVersion::Table,
                "flow_version",
                &["flow_id", "version"],
                true,
            ))
            .await?;

        create_flow_run(manager).await?;
        create_step_run(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            StepRun::Table.into_iden(),
            FlowRun::Table.into_iden(),
            FlowVersion::Table.into_iden(),
            Flow::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn create_flow_run(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(FlowRun::Table)
                .col(pk_uuid(FlowRun::Id))
                .col(uuid(FlowRun::WorkspaceId))
                .col(uuid(FlowRun::FlowId))
                .col(uuid(FlowRun::FlowVersionId))
                .col(string(FlowRun::Status))
                .col(string(FlowRun::TriggerType))
                .col(json_binary(FlowRun::TriggerPayload))
                .col(json_binary(FlowRun::State))
                .col(string_null(FlowRun::ConcurrencyKey))
                .col(text_null(FlowRun::Error))
                .col(timestamp_with_time_zone(FlowRun::CreatedAt))
                .col(timestamp_with_time_zone_null(FlowRun::StartedAt))
                .col(timestamp_with_time_zone_null(FlowRun::FinishedAt))
                .col(timestamp_with_time_zone(FlowRun::UpdatedAt))
                .foreign_key(&mut crate::workspace_fk(FlowRun::Table))
                .foreign_key(&mut crate::fk(
                    FlowRun::Table,
                    "flow_id",
                    Flow::Table,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut crate::fk(
                    FlowRun::Table,
                    "flow_version_id",
                    FlowVersion::Table,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
    for columns in [
        &["flow_id", "status"][..],
        &["concurrency_key", "status"][..],
    ] {
        manager
            .create_index(crate::index(FlowRun::Table, "flow_run", columns, false))
            .await?;
    }
    Ok(())
}

async fn create_step_run(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(StepRun::Table)
                .col(pk_uuid(StepRun::Id))
                .col(uuid(StepRun::WorkspaceId))
                .col(uuid(StepRun::RunId))
                .col(string(StepRun::StepId))
                .col(string(StepRun::StepType))
                .col(string(StepRun::Iteration))
                .col(integer(StepRun::Attempt))
                .col(string(StepRun::Status))
                .col(json_binary_null(StepRun::Input))
                .col(json_binary_null(StepRun::Output))
                .col(text_null(StepRun::Error))
                .col(string_uniq(StepRun::IdempotencyKey))
                .col(timestamp_with_time_zone(StepRun::StartedAt))
                .col(timestamp_with_time_zone_null(StepRun::FinishedAt))
                .foreign_key(&mut crate::workspace_fk(StepRun::Table))
                .foreign_key(&mut crate::fk(
                    StepRun::Table,
                    "run_id",
                    FlowRun::Table,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(crate::index(StepRun::Table, "step_run", &["run_id"], false))
        .await
}
