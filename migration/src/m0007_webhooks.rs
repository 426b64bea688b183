//! Outgoing webhooks: endpoints a workspace registers and one row per delivery attempt series,
//! so a failed delivery is retried from the database, not from memory.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum WebhookEndpoint {
    Table,
    Id,
    WorkspaceId,
    Url,
    Description,
    SecretEnc,
    Events,
    Enabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum WebhookDelivery {
    Table,
    Id,
    WorkspaceId,
    EndpointId,
    EventType,
    EventId,
    Payload,
    Status,
    Attempts,
    ResponseStatus,
    LastError,
    NextAttemptAt,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoint::Table)
                    .col(pk_uuid(WebhookEndpoint::Id))
                    .col(uuid(WebhookEndpoint::WorkspaceId))
                    .col(text(WebhookEndpoint::Url))
                    .col(text_null(WebhookEndpoint::Description))
                    .col(text(WebhookEndpoint::SecretEnc))
                    .col(json_binary(WebhookEndpoint::Events))
                    .col(boolean(WebhookEndpoint::Enabled))
                    .col(timestamp_with_time_zone(WebhookEndpoint::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookEndpoint::UpdatedAt))
                    .foreign_key(&mut crate::workspace_fk(WebhookEndpoint::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                WebhookEndpoint::Table,
                "webhook_endpoint",
                &["workspace_id"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDelivery::Table)
                    .col(pk_uuid(WebhookDelivery::Id))
                    .col(uuid(WebhookDelivery::WorkspaceId))
                    .col(uuid(WebhookDelivery::EndpointId))
                    .col(string(WebhookDelivery::EventType))
                    .col(uuid(WebhookDelivery::EventId))
                    .col(json_binary(WebhookDelivery::Payload))
                    .col(string(WebhookDelivery::Status))
                    .col(integer(WebhookDelivery::Attempts))
                    .col(integer_null(WebhookDelivery::ResponseStatus))
                    .col(text_null(WebhookDelivery::LastError))
                    .col(timestamp_with_time_zone_null(
                        WebhookDelivery::NextAttemptAt,
                    ))
                    .col(timestamp_with_time_zone(WebhookDelivery::CreatedAt))
                    .col(timestamp_with_time_zone_null(WebhookDelivery::DeliveredAt))
                    .foreign_key(&mut crate::workspace_fk(WebhookDelivery::Table))
                    .foreign_key(&mut crate::fk(
                        WebhookDelivery::Table,
                        "endpoint_id",
                        WebhookEndpoint::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        for columns in [&["endpoint_id"][..], &["status", "next_attempt_at"][..]] {
            manager
                .create_index(crate::index(
                    WebhookDelivery::Table,
                    "webhook_delivery",
                    columns,
                    false,
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDelivery::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookEndpoint::Table).to_owned())
            .await
    }
}
