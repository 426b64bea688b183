//! Campaigns: a bulk send of one template to an audience, and one row per recipient so a run can
//! stop anywhere (pause, crash, closed send window) and go on without repeating anyone. A
//! conversation a recipient answered in remembers its campaign.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0005_conversations_messages::Conversation;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
pub enum Campaign {
    Table,
    Id,
    WorkspaceId,
    Name,
    SenderId,
    TemplateId,
    TemplateName,
    Language,
    Variables,
    Audience,
    StartAt,
    Timezone,
    SendWindow,
    MessagesPerSecond,
    AcknowledgeNoOptOut,
    PauseOnQuality,
    FailureRateWindow,
    FailureRateThreshold,
    Status,
    StatusReason,
    DispatchToken,
    LockedUntil,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    CompletedAt,
}

#[derive(DeriveIden, Clone)]
enum CampaignRecipient {
    Table,
    Id,
    WorkspaceId,
    CampaignId,
    ContactId,
    Phone,
    Status,
    MessageId,
    ConversationId,
    ErrorCode,
    ErrorMessage,
    SentAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Column {
    CampaignId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaign::Table)
                    .col(pk_uuid(Campaign::Id))
                    .col(uuid(Campaign::WorkspaceId))
                    .col(string(Campaign::Name))
                    .col(uuid(Campaign::SenderId))
                    .col(uuid(Campaign::TemplateId))
                    .col(string(Campaign::TemplateName))
                    .col(string(Campaign::Language))
                    .col(json_binary(Campaign::Variables))
                    .col(json_binary(Campaign::Audience))
                    .col(timestamp_with_time_zone_null(Campaign::StartAt))
                    .col(string(Campaign::Timezone))
                    .col(json_binary_null(Campaign::SendWindow))
                    .col(integer(Campaign::MessagesPerSecond))
                    .col(boolean(Campaign::AcknowledgeNoOptOut))
                    .col(string(Campaign::PauseOnQuality))
                    .col(integer(Campaign::FailureRateWindow))
                    .col(double(Campaign::FailureRateThreshold))
                    .col(string(Campaign::Status))
                    .col(text_null(Campaign::StatusReason))
                    .col(uuid_null(Campaign::DispatchToken))
                    .col(timestamp_with_time_zone_null(Campaign::LockedUntil))
                    .col(timestamp_with_time_zone(Campaign::CreatedAt))
                    .col(timestamp_with_time_zone(Campaign::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Campaign::StartedAt))
                    .col(timestamp_with_time_zone_null(Campaign::CompletedAt))
                    .foreign_key(&mut crate::workspace_fk(Campaign::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignRecipient::Table)
                    .col(pk_uuid(CampaignRecipient::Id))
                    .col(uuid(CampaignRecipient::WorkspaceId))
                    .col(uuid(CampaignRecipient::CampaignId))
                    .col(uuid(CampaignRecipient::ContactId))
                    .col(string(CampaignRecipient::Phone))
                    .col(string(CampaignRecipient::Status))
                    .col(uuid_null(CampaignRecipient::MessageId))
                    .col(uuid_null(CampaignRecipient::ConversationId))
                    .col(string_null(CampaignRecipient::ErrorCode))
                    .col(text_null(CampaignRecipient::ErrorMessage))
                    .col(timestamp_with_time_zone_null(CampaignRecipient::SentAt))
                    .col(timestamp_with_time_zone(CampaignRecipient::UpdatedAt))
                    .foreign_key(&mut crate::workspace_fk(CampaignRecipient::Table))
                    .foreign_key(&mut crate::fk(
                        CampaignRecipient::Table,
                        "campaign_id",
                        Campaign::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        for (table, name, columns, unique) in [
            (
                Campaign::Table.into_iden(),
                "campaign",
                &["workspace_id", "status"][..],
                false,
            ),
            (
                Campaign::Table.into_iden(),
                "campaign",
                &["sender_id", "status"][..],
                false,
            ),
            (
                CampaignRecipient::Table.into_iden(),
                "campaign_recipient",
                &["campaign_id", "contact_id"][..],
                true,
            ),
            (
                CampaignRecipient::Table.into_iden(),
                "campaign_recipient",
                &["campaign_id", "status"][..],
                false,
            ),
            (
                CampaignRecipient::Table.into_iden(),
                "campaign_recipient",
                &["message_id"][..],
                false,
            ),
            (
                CampaignRecipient::Table.into_iden(),
                "campaign_recipient",
                &["phone", "sent_at"][..],
                false,
            ),
        ] {
            manager
                .create_index(crate::index(table, name, columns, unique))
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .add_column(uuid_null(Column::CampaignId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .drop_column(Column::CampaignId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(CampaignRecipient::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Campaign::Table).to_owned())
            .await
    }
}
