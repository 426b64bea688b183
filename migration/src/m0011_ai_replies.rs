//! What assistants need to answer and evaluate: per-assistant tuning (evaluation switch, history
//! budget, debounce, timeout) and, per conversation, the auto-reply bookkeeping (the last
//! customer message answered, when the next reply is due, a lease so one worker answers at a
//! time) and the state of the post-conversation evaluation.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{m0002_assistants::Assistant, m0005_conversations_messages::Conversation};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Column {
    EvaluationEnabled,
    HistoryTokenBudget,
    ReplyDebounceMs,
    RequestTimeoutSeconds,
    ExtractionStatus,
    AiRepliedThrough,
    AiReplyDueAt,
    AiLockedUntil,
}

fn assistant_columns() -> Vec<ColumnDef> {
    vec![
        boolean(Column::EvaluationEnabled).default(false).to_owned(),
        integer_null(Column::HistoryTokenBudget),
        integer_null(Column::ReplyDebounceMs),
        integer_null(Column::RequestTimeoutSeconds),
    ]
}

fn conversation_columns() -> Vec<ColumnDef> {
    vec![
        string_null(Column::ExtractionStatus),
        uuid_null(Column::AiRepliedThrough),
        timestamp_with_time_zone_null(Column::AiReplyDueAt),
        timestamp_with_time_zone_null(Column::AiLockedUntil),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per ALTER TABLE: SQLite cannot add several at once.
        for mut column in assistant_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Assistant::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        for mut column in conversation_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Conversation::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Column::ExtractionStatus,
            Column::AiRepliedThrough,
            Column::AiReplyDueAt,
            Column::AiLockedUntil,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Conversation::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            Column::EvaluationEnabled,
            Column::HistoryTokenBudget,
            Column::ReplyDebounceMs,
            Column::RequestTimeoutSeconds,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Assistant::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
