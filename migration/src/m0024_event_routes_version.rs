//! `workspace.routes_version`: a counter that moves whenever a row that routes the workspace's
//! events changes (its webhook endpoints and its flow trigger index), so that a process may
//! keep those rows in memory and know, from one number, when to read them again
//! (`jobs::event_routes`). Database triggers move it, in the transaction of the change, so no
//! writer can forget it: not the API, not a cascade from a deleted flow or version, not an
//! operator's SQL.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Workspace {
    Table,
    RoutesVersion,
}

/// The tables whose rows route events.
const ROUTING_TABLES: [&str; 2] = ["webhook_endpoint", "flow_trigger"];

/// PostgreSQL: one function, one trigger per table. `NEW` is NULL in a DELETE, `OLD` in an
/// INSERT.
const PG_FUNCTION: &str = "CREATE FUNCTION waflow_event_routes_changed() RETURNS trigger \
    LANGUAGE plpgsql AS $$ BEGIN \
    UPDATE workspace SET routes_version = routes_version + 1 \
    WHERE id = COALESCE(NEW.workspace_id, OLD.workspace_id); \
    RETURN NULL; END $$";

fn pg_trigger(table: &str) -> String {
    format!(
        "CREATE TRIGGER {table}_routes_changed AFTER INSERT OR UPDATE OR DELETE ON {table} \
         FOR EACH ROW EXECUTE FUNCTION waflow_event_routes_changed()"
    )
}

/// SQLite: a trigger per table and operation (foreign-key cascades fire them too).
fn sqlite_triggers(table: &str) -> Vec<String> {
    [("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")]
        .iter()
        .map(|(operation, row)| {
            let name = operation.to_lowercase();
            format!(
                "CREATE TRIGGER {table}_routes_{name} AFTER {operation} ON {table} BEGIN \
                 UPDATE workspace SET routes_version = routes_version + 1 \
                 WHERE id = {row}.workspace_id; END"
            )
        })
        .collect()
}

fn sqlite_trigger_names(table: &str) -> [String; 3] {
    ["insert", "update", "delete"].map(|name| format!("{table}_routes_{name}"))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Workspace::Table)
                    .add_column(
                        ColumnDef::new(Workspace::RoutesVersion)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(PG_FUNCTION).await?;
                for table in ROUTING_TABLES {
                    db.execute_unprepared(&pg_trigger(table)).await?;
                }
            }
            _ => {
                for table in ROUTING_TABLES {
                    for trigger in sqlite_triggers(table) {
                        db.execute_unprepared(&trigger).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for table in ROUTING_TABLES {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER {table}_routes_changed ON {table}"
                    ))
                    .await?;
                }
                db.execute_unprepared("DROP FUNCTION waflow_event_routes_changed()")
                    .await?;
            }
            _ => {
                for table in ROUTING_TABLES {
                    for name in sqlite_trigger_names(table) {
                        db.execute_unprepared(&format!("DROP TRIGGER {name}"))
                            .await?;
                    }
                }
            }
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Workspace::Table)
                    .drop_column(Workspace::RoutesVersion)
                    .to_owned(),
            )
            .await
    }
}
