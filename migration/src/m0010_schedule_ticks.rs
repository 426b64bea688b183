//! Periodic work (status refreshes, later cron triggers) must run once per tick across all
//! processes. Claiming a tick is inserting its row: the primary key lets exactly one process win,
//! on SQLite and PostgreSQL alike, and the row survives restarts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScheduleTick {
    Table,
    Name,
    Tick,
    ClaimedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ScheduleTick::Table)
                    .col(string(ScheduleTick::Name))
                    .col(big_integer(ScheduleTick::Tick))
                    .col(timestamp_with_time_zone(ScheduleTick::ClaimedAt))
                    .primary_key(
                        Index::create()
                            .col(ScheduleTick::Name)
                            .col(ScheduleTick::Tick),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ScheduleTick::Table).to_owned())
            .await
    }
}
