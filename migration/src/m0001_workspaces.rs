//! Tenancy: every row in Waflow belongs to a workspace; API keys are stored as SHA-256 hashes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
pub enum Workspace {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum ApiKey {
    Table,
    Id,
    WorkspaceId,
    Name,
    Prefix,
    KeyHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Workspace::Table)
                    .col(pk_uuid(Workspace::Id))
                    .col(string(Workspace::Name))
                    .col(timestamp_with_time_zone(Workspace::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKey::Table)
                    .col(pk_uuid(ApiKey::Id))
                    .col(uuid(ApiKey::WorkspaceId))
                    .col(string(ApiKey::Name))
                    .col(string(ApiKey::Prefix))
                    .col(string_uniq(ApiKey::KeyHash))
                    .col(timestamp_with_time_zone(ApiKey::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKey::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKey::RevokedAt))
                    .foreign_key(&mut crate::workspace_fk(ApiKey::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                ApiKey::Table,
                "api_key",
                &["workspace_id"],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKey::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Workspace::Table).to_owned())
            .await
    }
}
