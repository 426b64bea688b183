//! The index of a concurrency key's runs holds the status as the expression `status || ''`:
//! `(concurrency_key, (status || ''), id)`, and the engine's lookups of a key's runs
//! (`jobs::flows::lease`) name the status that way. With the status as a column, the lookups'
//! condition on it was answered as cheaply by `(status, wake_at)`: on a table without
//! statistics (a new deployment's first minute, a restored database) PostgreSQL costed both
//! indexes at one row, took the smaller, and kept that generic plan for its prepared
//! statements, reading every running run per lookup (2,865 runs filtered per insert in
//! `bench runs`). An expression no other index has leaves the planner this index to choose,
//! with or without statistics. Both databases index expressions (SQLite since 3.9).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NEW: &str =
    "CREATE INDEX idx_flow_run_key_lookup ON flow_run (concurrency_key, (status || ''), id)";
const DROP_NEW: &str = "DROP INDEX idx_flow_run_key_lookup";
const OLD: &str =
    "CREATE INDEX idx_flow_run_concurrency_key_status_id ON flow_run (concurrency_key, status, id)";
const DROP_OLD: &str = "DROP INDEX idx_flow_run_concurrency_key_status_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(NEW).await?;
        db.execute_unprepared(DROP_OLD).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(OLD).await?;
        db.execute_unprepared(DROP_NEW).await?;
        Ok(())
    }
}
