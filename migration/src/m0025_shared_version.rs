//! `shared_version`: one counter per set of rows that every process keeps a copy of and that no
//! workspace owns. Its first row, `senders`, moves whenever a `sender` row changes, so that a
//! process may keep the Cloud API senders and their app secrets in memory (a webhook delivery
//! does not say whose it is: it is verified against every app's secret) and know, from one
//! number read inside its write transaction, that its copy is still the truth
//! (`jobs::sender_directory`). A database trigger moves it, in the transaction of the change,
//! so no writer can forget it: not the API, not a workspace's cascade, not an operator's SQL.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SharedVersion {
    Table,
    Name,
    Version,
}

/// PostgreSQL: once per statement is enough, the number only has to move (and a `TRUNCATE`,
/// which fires no row trigger, moves it too).
const PG_FUNCTION: &str = "CREATE FUNCTION waflow_senders_changed() RETURNS trigger \
    LANGUAGE plpgsql AS $$ BEGIN \
    UPDATE shared_version SET version = version + 1 WHERE name = 'senders'; \
    RETURN NULL; END $$";
const PG_TRIGGER: &str = "CREATE TRIGGER sender_directory_changed \
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sender \
    FOR EACH STATEMENT EXECUTE FUNCTION waflow_senders_changed()";

/// SQLite has row triggers only: one per operation (foreign-key cascades fire them too).
const SQLITE_OPERATIONS: [&str; 3] = ["INSERT", "UPDATE", "DELETE"];

fn sqlite_trigger_name(operation: &str) -> String {
    format!("sender_directory_{}", operation.to_lowercase())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SharedVersion::Table)
                    .col(
                        ColumnDef::new(SharedVersion::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SharedVersion::Version)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(SharedVersion::Table)
                    .columns([SharedVersion::Name])
                    .values_panic(["senders".into()])
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(PG_FUNCTION).await?;
                db.execute_unprepared(PG_TRIGGER).await?;
            }
            _ => {
                for operation in SQLITE_OPERATIONS {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {} AFTER {operation} ON sender BEGIN \
                         UPDATE shared_version SET version = version + 1 \
                         WHERE name = 'senders'; END",
                        sqlite_trigger_name(operation)
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared("DROP TRIGGER sender_directory_changed ON sender")
                    .await?;
                db.execute_unprepared("DROP FUNCTION waflow_senders_changed()")
                    .await?;
            }
            _ => {
                for operation in SQLITE_OPERATIONS {
                    let name = sqlite_trigger_name(operation);
                    db.execute_unprepared(&format!("DROP TRIGGER {name}"))
                        .await?;
                }
            }
        }
        manager
            .drop_table(Table::drop().table(SharedVersion::Table).to_owned())
            .await
    }
}
