//! A campaign's header and button parameters (a template's image, a URL button's suffix, a
//! coupon code), as `{"header": …, "buttons": […]}` of minijinja templates rendered per
//! recipient. Null for campaigns whose template needs none.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m0014_campaigns::Campaign;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Column {
    TemplateParameters,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Campaign::Table)
                    .add_column(json_binary_null(Column::TemplateParameters))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Campaign::Table)
                    .drop_column(Column::TemplateParameters)
                    .to_owned(),
            )
            .await
    }
}
