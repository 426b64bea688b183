//! Contact tags, one row per (contact, tag): audiences select contacts by tag with an index
//! instead of searching JSON, the same way on SQLite and PostgreSQL.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0004_contacts::Contact;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum ContactTag {
    Table,
    ContactId,
    Tag,
    WorkspaceId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ContactTag::Table)
                    .col(uuid(ContactTag::ContactId))
                    .col(string(ContactTag::Tag))
                    .col(uuid(ContactTag::WorkspaceId))
                    .primary_key(
                        Index::create()
                            .col(ContactTag::ContactId)
                            .col(ContactTag::Tag),
                    )
                    .foreign_key(&mut crate::workspace_fk(ContactTag::Table))
                    .foreign_key(&mut crate::fk(
                        ContactTag::Table,
                        "contact_id",
                        Contact::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                ContactTag::Table,
                "contact_tag",
                &["workspace_id", "tag"],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ContactTag::Table).to_owned())
            .await
    }
}
