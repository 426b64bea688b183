//! Contacts (customers by E.164 phone) and, per sender, when each last wrote to us: the start of
//! WhatsApp's 24-hour customer service window.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0003_senders_templates::Sender;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
pub enum Contact {
    Table,
    Id,
    WorkspaceId,
    Phone,
    Name,
    Attributes,
    OptedOut,
    OptedOutAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum ContactWindow {
    Table,
    ContactId,
    SenderId,
    WorkspaceId,
    LastInboundAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Contact::Table)
                    .col(pk_uuid(Contact::Id))
                    .col(uuid(Contact::WorkspaceId))
                    .col(string(Contact::Phone))
                    .col(string_null(Contact::Name))
                    .col(json_binary(Contact::Attributes))
                    .col(boolean(Contact::OptedOut))
                    .col(timestamp_with_time_zone_null(Contact::OptedOutAt))
                    .col(timestamp_with_time_zone(Contact::CreatedAt))
                    .col(timestamp_with_time_zone(Contact::UpdatedAt))
                    .foreign_key(&mut crate::workspace_fk(Contact::Table))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                Contact::Table,
                "contact",
                &["workspace_id", "phone"],
                true,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContactWindow::Table)
                    .col(uuid(ContactWindow::ContactId))
                    .col(uuid(ContactWindow::SenderId))
                    .col(uuid(ContactWindow::WorkspaceId))
                    .col(timestamp_with_time_zone(ContactWindow::LastInboundAt))
                    .primary_key(
                        Index::create()
                            .col(ContactWindow::ContactId)
                            .col(ContactWindow::SenderId),
                    )
                    .foreign_key(&mut crate::workspace_fk(ContactWindow::Table))
                    .foreign_key(&mut crate::fk(
                        ContactWindow::Table,
                        "contact_id",
                        Contact::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut crate::fk(
                        ContactWindow::Table,
                        "sender_id",
                        Sender::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ContactWindow::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Contact::Table).to_owned())
            .await
    }
}
