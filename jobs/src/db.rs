//! Opening the database and bringing its schema up to date.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use waflow_migration::{Migrator, MigratorTrait};

/// Connects to `url` (`sqlite://…` or `postgres://…`). SQLite gets WAL and a busy timeout through
/// sqlx's defaults; its pool is small because SQLite serialises writers anyway.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(match url {
            // Every connection to `:memory:` would be a database of its own.
            u if u.contains(":memory:") => 1,
            u if u.starts_with("sqlite:") => 8,
            _ => 20,
        })
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Whether migrations this binary knows are still to run (for readiness checks and `serve`).
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so concurrent writers queue on the busy timeout instead of failing with
/// "database is locked" when a read turns into a write; PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        isolation_level: None,
        access_mode: None,
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
    })
    .await
}
