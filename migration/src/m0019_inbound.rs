//! What inbound traffic adds: a conversation's ad attribution (the Click-to-WhatsApp referral
//! that brought the customer), and the dead letters: webhook entries Waflow could not read,
//! kept with their raw JSON so nothing Meta sent is lost without a trace.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{m0003_senders_templates::Sender, m0005_conversations_messages::Conversation};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Column {
    Referral,
}

#[derive(DeriveIden, Clone)]
enum InboundDeadLetter {
    Table,
    Id,
    WorkspaceId,
    SenderId,
    Reason,
    Raw,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .add_column(json_binary_null(Column::Referral))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InboundDeadLetter::Table)
                    .col(pk_uuid(InboundDeadLetter::Id))
                    .col(uuid_null(InboundDeadLetter::WorkspaceId))
                    .col(uuid_null(InboundDeadLetter::SenderId))
                    .col(text(InboundDeadLetter::Reason))
                    .col(json_binary(InboundDeadLetter::Raw))
                    .col(timestamp_with_time_zone(InboundDeadLetter::CreatedAt))
                    .foreign_key(&mut crate::workspace_fk(InboundDeadLetter::Table))
                    .foreign_key(&mut crate::fk(
                        InboundDeadLetter::Table,
                        "sender_id",
                        Sender::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                InboundDeadLetter::Table,
                "inbound_dead_letter",
                &["workspace_id", "created_at"],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InboundDeadLetter::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .drop_column(Column::Referral)
                    .to_owned(),
            )
            .await
    }
}
