//! AI assistants, created before senders because a sender may name one for auto-replies.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
pub enum Assistant {
    Table,
    Id,
    WorkspaceId,
    Name,
    Provider,
    BaseUrl,
    Model,
    ApiKeyEnc,
    Temperature,
    MaxTokens,
    SystemPrompt,
    ExtractionFields,
    ScriptedRules,
    FallbackReply,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Assistant::Table)
                    .col(pk_uuid(Assistant::Id))
                    .col(uuid(Assistant::WorkspaceId))
                    .col(string(Assistant::Name))
                    .col(string(Assistant::Provider))
                    .col(string_null(Assistant::BaseUrl))
                    .col(string_null(Assistant::Model))
                    .col(text_null(Assistant::ApiKeyEnc))
                    .col(double_null(Assistant::Temperature))
                    .col(integer_null(Assistant::MaxTokens))
                    .col(text(Assistant::SystemPrompt))
                    .col(json_binary(Assistant::ExtractionFields))
                    .col(json_binary(Assistant::ScriptedRules))
                    .col(text_null(Assistant::FallbackReply))
                    .col(timestamp_with_time_zone(Assistant::CreatedAt))
                    .col(timestamp_with_time_zone(Assistant::UpdatedAt))
                    .foreign_key(&mut crate::workspace_fk(Assistant::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                Assistant::Table,
                "assistant",
                &["workspace_id"],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Assistant::Table).to_owned())
            .await
    }
}
