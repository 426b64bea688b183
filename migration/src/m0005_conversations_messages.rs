//! Conversations and their messages.
//!
//! At most one ACTIVE conversation exists per (sender, contact) and per (assistant, customer
//! identifier): partial unique indexes make the database enforce it, so two concurrent inbound
//! webhooks cannot both open one. The partial-index SQL is the same on SQLite and PostgreSQL.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0002_assistants::Assistant;
use crate::m0003_senders_templates::{Sender, Template};
use crate::m0004_contacts::Contact;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
pub enum Conversation {
    Table,
    Id,
    WorkspaceId,
    Type,
    Status,
    EndReason,
    SenderId,
    ContactId,
    CustomerIdentifier,
    AssistantId,
    AiEnabled,
    InputVariables,
    ExtractedVariables,
    EndedPayload,
    MessageCount,
    CreatedAt,
    LastMessageAt,
    EndedAt,
}

// Iden names mirror the columns; `error_message` ends with the table's name by coincidence.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden, Clone)]
enum Message {
    Table,
    Id,
    WorkspaceId,
    ConversationId,
    SenderId,
    ContactId,
    Direction,
    Role,
    Kind,
    Body,
    TemplateId,
    TemplateParams,
    ProviderMessageId,
    Status,
    ErrorCode,
    ErrorMessage,
    IdempotencyKey,
    CreatedAt,
    UpdatedAt,
}

const PARTIAL_INDEXES: [(&str, &str); 2] = [
    (
        "idx_conversation_active_whatsapp",
        "CREATE UNIQUE INDEX idx_conversation_active_whatsapp ON conversation (sender_id, contact_id) \
         WHERE status = 'ACTIVE' AND type = 'WHATSAPP'",
    ),
    (
        "idx_conversation_active_api",
        "CREATE UNIQUE INDEX idx_conversation_active_api ON conversation (assistant_id, customer_identifier) \
         WHERE status = 'ACTIVE' AND type = 'API'",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_conversation(manager).await?;
        create_message(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Message::Table).to_owned())
            .await?;
        for (name, _) in PARTIAL_INDEXES {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(Conversation::Table)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Conversation::Table).to_owned())
            .await
    }
}

async fn create_conversation(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Conversation::Table)
                .col(pk_uuid(Conversation::Id))
                .col(uuid(Conversation::WorkspaceId))
                .col(string(Conversation::Type))
                .col(string(Conversation::Status))
                .col(string_null(Conversation::EndReason))
                .col(uuid_null(Conversation::SenderId))
                .col(uuid_null(Conversation::ContactId))
                .col(string_null(Conversation::CustomerIdentifier))
                .col(uuid_null(Conversation::AssistantId))
                .col(boolean(Conversation::AiEnabled))
                .col(json_binary(Conversation::InputVariables))
                .col(json_binary(Conversation::ExtractedVariables))
                .col(json_binary_null(Conversation::EndedPayload))
                .col(integer(Conversation::MessageCount))
                .col(timestamp_with_time_zone(Conversation::CreatedAt))
                .col(timestamp_with_time_zone(Conversation::LastMessageAt))
                .col(timestamp_with_time_zone_null(Conversation::EndedAt))
                .foreign_key(&mut crate::workspace_fk(Conversation::Table))
                .foreign_key(&mut crate::fk(
                    Conversation::Table,
                    "sender_id",
                    Sender::Table,
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut crate::fk(
                    Conversation::Table,
                    "contact_id",
                    Contact::Table,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut crate::fk(
                    Conversation::Table,
                    "assistant_id",
                    Assistant::Table,
                    ForeignKeyAction::SetNull,
                ))
                .to_owned(),
        )
        .await?;
    for columns in [&["workspace_id", "status"][..], &["contact_id"][..]] {
        manager
            .create_index(crate::index(
                Conversation::Table,
                "conversation",
                columns,
                false,
            ))
            .await?;
    }
    for (_, sql) in PARTIAL_INDEXES {
        manager.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}

async fn create_message(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Message::Table)
                .col(pk_uuid(Message::Id))
                .col(uuid(Message::WorkspaceId))
                .col(uuid(Message::ConversationId))
                .col(uuid_null(Message::SenderId))
                .col(uuid_null(Message::ContactId))
                .col(string(Message::Direction))
                .col(string(Message::Role))
                .col(string(Message::Kind))
                .col(text_null(Message::Body))
                .col(uuid_null(Message::TemplateId))
                .col(json_binary_null(Message::TemplateParams))
                .col(string_null(Message::ProviderMessageId))
                .col(string(Message::Status))
                .col(string_null(Message::ErrorCode))
                .col(text_null(Message::ErrorMessage))
                .col(string_null(Message::IdempotencyKey))
                .col(timestamp_with_time_zone(Message::CreatedAt))
                .col(timestamp_with_time_zone(Message::UpdatedAt))
                .foreign_key(&mut crate::workspace_fk(Message::Table))
                .foreign_key(&mut crate::fk(
                    Message::Table,
                    "conversation_id",
                    Conversation::Table,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut crate::fk(
                    Message::Table,
                    "sender_id",
                    Sender::Table,
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut crate::fk(
                    Message::Table,
                    "contact_id",
                    Contact::Table,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut crate::fk(
                    Message::Table,
                    "template_id",
                    Template::Table,
                    ForeignKeyAction::SetNull,
                ))
                .to_owned(),
        )
        .await?;
    for (columns, unique) in [
        // Provider webhooks are retried: the provider message id de-duplicates them.
        (&["sender_id", "provider_message_id"][..], true),
        (&["workspace_id", "idempotency_key"][..], true),
        (&["conversation_id", "created_at"][..], false),
        (&["contact_id"][..], false),
    ] {
        manager
            .create_index(crate::index(Message::Table, "message", columns, unique))
            .await?;
    }
    Ok(())
}
