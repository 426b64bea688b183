//! A sender whose quality rating is RED stops sending MARKETING templates unless a user
//! overrides it; this flag is that override.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0003_senders_templates::Sender;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Column {
    AllowMarketingOnLowQuality,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sender::Table)
                    .add_column(boolean(Column::AllowMarketingOnLowQuality).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sender::Table)
                    .drop_column(Column::AllowMarketingOnLowQuality)
                    .to_owned(),
            )
            .await
    }
}
