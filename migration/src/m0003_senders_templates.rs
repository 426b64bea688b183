//! WhatsApp senders (phone numbers) and their message templates.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0002_assistants::Assistant;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
pub enum Sender {
    Table,
    Id,
    WorkspaceId,
    PhoneNumber,
    DisplayName,
    Provider,
    Status,
    StatusReason,
    QualityRating,
    MessagingLimitTier,
    PhoneNumberId,
    BusinessAccountId,
    ApiBaseUrl,
    AccessTokenEnc,
    AppSecretEnc,
    VerifyTokenEnc,
    MessagesPerSecond,
    InactivityTimeoutSeconds,
    AssistantId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
pub enum Template {
    Table,
    Id,
    WorkspaceId,
    SenderId,
    Name,
    Language,
    Category,
    Status,
    StatusReason,
    Components,
    VariableCount,
    ProviderTemplateId,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sender::Table)
                    .col(pk_uuid(Sender::Id))
                    .col(uuid(Sender::WorkspaceId))
                    .col(string(Sender::PhoneNumber))
                    .col(string(Sender::DisplayName))
                    .col(string(Sender::Provider))
                    .col(string(Sender::Status))
                    .col(text_null(Sender::StatusReason))
                    .col(string(Sender::QualityRating))
                    .col(string_null(Sender::MessagingLimitTier))
                    .col(string_null(Sender::PhoneNumberId))
                    .col(string_null(Sender::BusinessAccountId))
                    .col(string_null(Sender::ApiBaseUrl))
                    .col(text_null(Sender::AccessTokenEnc))
                    .col(text_null(Sender::AppSecretEnc))
                    .col(text_null(Sender::VerifyTokenEnc))
                    .col(integer(Sender::MessagesPerSecond))
                    .col(integer(Sender::InactivityTimeoutSeconds))
                    .col(uuid_null(Sender::AssistantId))
                    .col(timestamp_with_time_zone(Sender::CreatedAt))
                    .col(timestamp_with_time_zone(Sender::UpdatedAt))
                    .foreign_key(&mut crate::workspace_fk(Sender::Table))
                    .foreign_key(&mut crate::fk(
                        Sender::Table,
                        "assistant_id",
                        Assistant::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        for (columns, unique) in [
            (&["workspace_id", "phone_number"][..], true),
            // Meta's webhooks name the receiving number by its phone number id, across workspaces.
            (&["phone_number_id"][..], true),
        ] {
            manager
                .create_index(crate::index(Sender::Table, "sender", columns, unique))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Template::Table)
                    .col(pk_uuid(Template::Id))
                    .col(uuid(Template::WorkspaceId))
                    .col(uuid(Template::SenderId))
                    .col(string(Template::Name))
                    .col(string(Template::Language))
                    .col(string(Template::Category))
                    .col(string(Template::Status))
                    .col(text_null(Template::StatusReason))
                    .col(json_binary(Template::Components))
                    .col(integer(Template::VariableCount))
                    .col(string_null(Template::ProviderTemplateId))
                    .col(timestamp_with_time_zone(Template::CreatedAt))
                    .col(timestamp_with_time_zone(Template::UpdatedAt))
                    .foreign_key(&mut crate::workspace_fk(Template::Table))
                    .foreign_key(&mut crate::fk(
                        Template::Table,
                        "sender_id",
                        Sender::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                Template::Table,
                "template",
                &["sender_id", "name", "language"],
                true,
            ))
            .await?;
        manager
            .create_index(crate::index(
                Template::Table,
                "template",
                &["workspace_id"],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Template::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Sender::Table).to_owned())
            .await
    }
}
