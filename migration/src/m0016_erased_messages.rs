//! The provider ids of an erased contact's messages, hashed, so that a replay of their
//! webhook (Meta redelivers for days, and anyone holding an old signed body can send it again)
//! does not bring the contact back. Only a hash is kept: the erased data stays erased.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum ErasedMessage {
    Table,
    SenderId,
    IdHash,
    WorkspaceId,
    ErasedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ErasedMessage::Table)
                    .col(uuid(ErasedMessage::SenderId))
                    .col(string(ErasedMessage::IdHash))
                    .col(uuid(ErasedMessage::WorkspaceId))
                    .col(timestamp_with_time_zone(ErasedMessage::ErasedAt))
                    .primary_key(
                        Index::create()
                            .col(ErasedMessage::SenderId)
                            .col(ErasedMessage::IdHash),
                    )
                    .foreign_key(&mut crate::workspace_fk(ErasedMessage::Table))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ErasedMessage::Table).to_owned())
            .await
    }
}
