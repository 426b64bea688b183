//! A contact's WhatsApp id (`wa_id`) as WhatsApp gave it, beside the dialable number: in
//! Brazil, Mexico and Argentina the two differ, and a message goes to the id WhatsApp knows.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0004_contacts::Contact;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Column {
    WaId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Contact::Table)
                    .add_column(string_null(Column::WaId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Contact::Table)
                    .drop_column(Column::WaId)
                    .to_owned(),
            )
            .await
    }
}
