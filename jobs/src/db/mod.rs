//! Opening the database, bringing its schema up to date, and the statements both databases
//! need written their own way. When a commit is on disk: [`durability`].

mod durability;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use waflow_migration::{Migrator, MigratorTrait};

pub use durability::{Durability, WAL_LIMIT, WalSync};

/// Connects to `url` (`sqlite://…` or `postgres://…`). SQLite's pool is small because SQLite
/// serialises writers anyway, and its commits are not flushed to disk one by one: see
/// [`Durability`].
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        // WAL, so that readers never wait for the writer. `synchronous=NORMAL`: a commit is
        // appended to the WAL without an fsync (one fsync per commit held the embedded profile
        // to ~560 commits/s on our machine, a flow run makes four); `Durability::sync` flushes
        // them, once for every commit before it, where a power cut must not take one back.
        .map_sqlx_sqlite_opts(|options| {
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        })
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|connection, _| {
                Box::pin(async move {
                    let mut handle = connection.lock_handle().await?;
                    let raw = handle.as_raw_handle().as_ptr();
                    // SAFETY: the handle is locked for these calls, and `retry_soon` keeps no
                    // state (its argument is unused).
                    unsafe {
                        libsqlite3_sys::sqlite3_busy_handler(
                            raw,
                            Some(retry_soon),
                            std::ptr::null_mut(),
                        );
                        durability::count_commits(raw);
                    }
                    Ok(())
                })
            })
        })
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

/// How long a SQLite connection waits for the write lock before it fails with "database is
/// locked": sqlx's default busy timeout.
const SQLITE_LOCK_WAIT: Duration = Duration::from_secs(5);
/// The longest nap between two tries for SQLite's write lock.
const SQLITE_LOCK_NAP: Duration = Duration::from_millis(1);

/// SQLite's busy handler (<https://sqlite.org/c3ref/busy_handler.html>): called on the
/// connection's own thread when the write lock is taken, answers whether to try again. The
/// default one (`busy_timeout`) naps 1, 2, 5, 10, … 100 ms between tries: under load the lock
/// sits free while every waiter naps (the embedded profile measured 270 naps a second and one
/// core of two busy). This one naps 50 µs, doubling up to 1 ms, for the same 5 s in all.
unsafe extern "C" fn retry_soon(
    _: *mut std::ffi::c_void,
    tries: std::ffi::c_int,
) -> std::ffi::c_int {
    let nap = lock_nap(tries);
    if nap.is_zero() {
        return 0;
    }
    std::thread::sleep(nap);
    1
}

/// The nap before try `tries + 1`; zero once the naps so far add up to [`SQLITE_LOCK_WAIT`].
fn lock_nap(tries: i32) -> Duration {
    let doubling = 5; // 50 µs << 5 > 1 ms
    let tries = tries.max(0) as u32;
    let ramp: Duration = (0..tries.min(doubling))
        .map(|i| Duration::from_micros(50 << i))
        .sum();
    let waited = ramp + SQLITE_LOCK_NAP * tries.saturating_sub(doubling);
    if waited >= SQLITE_LOCK_WAIT {
        return Duration::ZERO;
    }
    Duration::from_micros(50 << tries.min(doubling)).min(SQLITE_LOCK_NAP)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Whether migrations this binary knows are still to run (for readiness checks and `serve`).
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}

/// `column` equal to one of `values` (many: a batch of an import), as a condition an index
/// answers on either database. On PostgreSQL `column = ANY($1)`, one array parameter: an
/// `IN ($1, …, $n)` list in a prepared statement gets a generic plan that may filter every row
/// the rest of the condition leaves by comparing it with each value in turn (a 30,000-row
/// contact import spent a second on each batch of 500 there, more as the table grew). SQLite
/// has no arrays and looks each value of an `IN` list up in the index.
pub fn one_of<C, V>(backend: DbBackend, column: C, values: Vec<V>) -> sea_orm::sea_query::Expr
where
    C: sea_orm::ColumnTrait,
    V: Into<sea_orm::Value>
        + sea_orm::sea_query::value::postgres_array::NotU8
        + sea_orm::sea_query::ValueType,
{
    match backend {
        DbBackend::Postgres => sea_orm::sea_query::ExprTrait::eq(
            column.into_expr(),
            sea_orm::sea_query::PgFunc::any(sea_orm::sea_query::Expr::val(values)),
        ),
        _ => column.is_in(values),
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    /// A database file that is removed, with its WAL, when dropped.
    pub(crate) struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    /// A SQLite file database (see [`connect`]) with one table `t (v TEXT)`.
    pub(crate) async fn file_database() -> (Scratch, DatabaseConnection) {
        let path = std::env::temp_dir().join(format!("waflow-db-{}.db", uuid::Uuid::now_v7()));
        let db = connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        db.execute_unprepared("CREATE TABLE t (v TEXT)")
            .await
            .unwrap();
        (Scratch(path), db)
    }

    /// Commits skip the fsync (`synchronous=NORMAL` is 1), in WAL mode.
    #[tokio::test]
    async fn sqlite_files_commit_to_the_wal_without_an_fsync() {
        let (_dir, db) = file_database().await;
        for (pragma, expected) in [("synchronous", "1"), ("journal_mode", "wal")] {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    format!("SELECT CAST({pragma} AS TEXT) AS v FROM pragma_{pragma}"),
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                row.try_get::<String>("", "v").unwrap(),
                expected,
                "{pragma}"
            );
        }
    }

    /// Naps grow from 50 µs to 1 ms and stop after 5 s of them.
    #[test]
    fn lock_naps_are_short_and_end() {
        assert_eq!(lock_nap(0), Duration::from_micros(50));
        assert_eq!(lock_nap(3), Duration::from_micros(400));
        assert_eq!(lock_nap(5), SQLITE_LOCK_NAP);
        let naps: Vec<Duration> = (0..)
            .map(lock_nap)
            .take_while(|nap| !nap.is_zero())
            .collect();
        let total: Duration = naps.iter().sum();
        assert!(
            total >= SQLITE_LOCK_WAIT - SQLITE_LOCK_NAP
                && total <= SQLITE_LOCK_WAIT + SQLITE_LOCK_NAP,
            "{total:?}"
        );
    }

    /// A writer that waits for another's lock gets it once that commits, within the wait.
    #[tokio::test]
    async fn a_writer_waits_for_the_lock() {
        let (_dir, db) = file_database().await;
        let holder = begin_write(&db).await.unwrap();
        holder
            .execute_unprepared("INSERT INTO t VALUES ('first')")
            .await
            .unwrap();
        let waiter = {
            let db = db.clone();
            tokio::spawn(async move {
                db.execute_unprepared("INSERT INTO t VALUES ('second')")
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        holder.commit().await.unwrap();
        waiter.await.unwrap().unwrap();
    }

    /// Many values are one array parameter on PostgreSQL (which its index answers, whatever the
    /// plan), an `IN` list on SQLite.
    #[test]
    fn one_of_is_one_array_on_postgres() {
        use sea_orm::{EntityTrait, QueryFilter, QueryTrait};
        use waflow_entities::contact;
        let phones: Vec<String> = (0..500).map(|i| format!("+1415555{i:04}")).collect();
        let query = |backend| {
            contact::Entity::find()
                .filter(one_of(backend, contact::Column::Phone, phones.clone()))
                .build(backend)
        };
        let postgres = query(DbBackend::Postgres);
        assert!(
            postgres
                .sql
                .ends_with(r#"WHERE "contact"."phone" = ANY($1)"#),
            "{}",
            postgres.sql
        );
        assert_eq!(postgres.values.map(|v| v.0.len()), Some(1));
        let sqlite = query(DbBackend::Sqlite);
        assert!(
            sqlite.sql.contains(r#""contact"."phone" IN (?, ?"#),
            "{}",
            sqlite.sql
        );
        assert_eq!(sqlite.values.map(|v| v.0.len()), Some(500));
    }
}
