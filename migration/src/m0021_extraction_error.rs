//! Why a conversation's evaluation FAILED (the model's error, an answer that was not the fields'
//! JSON, a deleted assistant), shown on the conversation instead of only in the server's log.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0005_conversations_messages::Conversation;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Column {
    ExtractionError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .add_column(text_null(Column::ExtractionError))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversation::Table)
                    .drop_column(Column::ExtractionError)
                    .to_owned(),
            )
            .await
    }
}
