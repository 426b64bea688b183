//! Opening the database, bringing its schema up to date, and knowing when a commit is on disk.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use waflow_migration::{Migrator, MigratorTrait};

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
                    // SAFETY: the handle is locked for these calls. `retry_soon` keeps no
                    // state (its argument is unused); `count_commit`'s argument is a counter
                    // that lives as long as the process.
                    unsafe {
                        libsqlite3_sys::sqlite3_busy_handler(
                            raw,
                            Some(retry_soon),
                            std::ptr::null_mut(),
                        );
                        if let Some(commits) = commits_of(&main_file(raw)) {
                            libsqlite3_sys::sqlite3_wal_hook(
                                raw,
                                Some(count_commit),
                                std::ptr::from_ref(commits).cast_mut().cast(),
                            );
                        }
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

/// Frames in the WAL past which a commit checkpoints it: SQLite's own default
/// (<https://sqlite.org/c3ref/wal_autocheckpoint.html>), which a WAL hook replaces.
const AUTOCHECKPOINT_FRAMES: std::ffi::c_int = 1000;

/// SQLite's WAL hook (<https://sqlite.org/c3ref/wal_hook.html>): called on the committing
/// connection after a write transaction is in the WAL file. It counts the commit (for
/// [`WalSync`]: nothing new to flush, no fsync) and checkpoints as SQLite's default hook would.
unsafe extern "C" fn count_commit(
    commits: *mut std::ffi::c_void,
    db: *mut libsqlite3_sys::sqlite3,
    schema: *const std::ffi::c_char,
    frames: std::ffi::c_int,
) -> std::ffi::c_int {
    // SAFETY: registered with a `&'static AtomicU64` (`connect`).
    let commits = unsafe { &*commits.cast::<AtomicU64>() };
    commits.fetch_add(1, Ordering::SeqCst);
    if frames >= AUTOCHECKPOINT_FRAMES {
        // SAFETY: `db` and `schema` are SQLite's own, valid for this call; the default hook
        // makes the same call here.
        unsafe { libsqlite3_sys::sqlite3_wal_checkpoint(db, schema) };
    }
    libsqlite3_sys::SQLITE_OK
}

/// The path of a connection's main database file; empty for an in-memory one.
///
/// # Safety
/// `db` must be an open connection, not used by another thread during the call.
unsafe fn main_file(db: *mut libsqlite3_sys::sqlite3) -> String {
    // SAFETY: the caller's; SQLite answers null or a string it owns while `db` is open.
    let name = unsafe { libsqlite3_sys::sqlite3_db_filename(db, c"main".as_ptr()) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated (above).
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// The commits made to the database file `path` by this process, on any connection: one
/// counter per file, for as long as the process runs (a few bytes per file ever opened). None
/// for an in-memory database.
fn commits_of(path: &str) -> Option<&'static AtomicU64> {
    static COMMITS: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<String, &'static AtomicU64>>,
    > = std::sync::LazyLock::new(Default::default);
    if path.is_empty() {
        return None;
    }
    let mut files = COMMITS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Some(
        files
            .entry(path.to_owned())
            .or_insert_with(|| Box::leak(Box::new(AtomicU64::new(0)))),
    )
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

/// The WAL size past which the worker's SQLite upkeep truncates it (`Durability::keep_wal_short`).
pub const WAL_LIMIT: u64 = 16 << 20;

/// When a committed transaction is on disk, safe from a power cut or an OS crash (a killed
/// process loses nothing either way: its writes are in the OS's cache).
///
/// Whatever leaves the process because of a commit (an HTTP answer, a message handed to
/// WhatsApp, a flow's side effect) must wait for [`Durability::sync`] first, or a power cut
/// could take back the commit that announced it: a run answered 202 would vanish, a step
/// whose "started" record vanished would send again.
#[derive(Clone, Debug)]
pub enum Durability {
    /// Every commit is on disk when it returns (PostgreSQL with its default
    /// `synchronous_commit = on`), or there is no disk (an in-memory SQLite database).
    AtCommit,
    /// SQLite in WAL mode with `synchronous=NORMAL` (<https://sqlite.org/pragma.html#pragma_synchronous>):
    /// commits are on disk after the next fsync of the WAL file.
    AtWalSync(Arc<WalSync>),
}

impl Durability {
    /// What `db`'s commits need: PostgreSQL none, a SQLite file [`WalSync`].
    pub async fn of(db: &DatabaseConnection) -> Result<Self, DbErr> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(Self::AtCommit);
        }
        let main = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT file FROM pragma_database_list WHERE name = 'main'",
            ))
            .await?
            .map(|row| row.try_get::<String>("", "file"))
            .transpose()?
            .unwrap_or_default();
        // An in-memory database has no file name.
        Ok(match commits_of(&main) {
            None => Self::AtCommit,
            Some(commits) => Self::AtWalSync(Arc::new(WalSync::new(
                PathBuf::from(format!("{main}-wal")),
                commits,
            ))),
        })
    }

    /// Keeps SQLite's WAL short: past `limit` bytes, checkpoints it and truncates it to zero.
    /// Under steady load some connection always reads, so SQLite's own checkpoints never get
    /// to restart the WAL: it grew to 715 MB in 25 s of `bench runs --embedded`, and every
    /// commit's checkpoint attempt sorted all its frames (completed runs fell as it grew).
    /// `TRUNCATE` waits for the readers of the WAL to finish (the busy handler's 5 s at most);
    /// a checkpoint that could not finish is tried again at the next call. The worker's
    /// upkeep (`worker::keep_sqlite_lean`) calls it every second with [`WAL_LIMIT`].
    pub async fn keep_wal_short(&self, db: &DatabaseConnection, limit: u64) -> Result<(), DbErr> {
        let Self::AtWalSync(wal) = self else {
            return Ok(());
        };
        let size = tokio::fs::metadata(&wal.wal)
            .await
            .map_or(0, |meta| meta.len());
        if size <= limit {
            return Ok(());
        }
        let outcome = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA wal_checkpoint(TRUNCATE)",
            ))
            .await?;
        let busy = outcome.is_some_and(|row| row.try_get_by_index::<i32>(0).unwrap_or(0) != 0);
        if busy {
            tracing::debug!(
                size,
                "the WAL checkpoint waited too long for readers; next tick"
            );
        } else {
            metrics::counter!("waflow_wal_truncations_total").increment(1);
        }
        Ok(())
    }

    /// Returns once every transaction committed before the call is on disk. Concurrent callers
    /// share one fsync. Errors: the WAL file could not be flushed (`DbErr::Custom`).
    pub async fn sync(&self) -> Result<(), DbErr> {
        match self {
            Self::AtCommit => Ok(()),
            Self::AtWalSync(wal) => wal.sync().await,
        }
    }
}

/// Group commit for SQLite's WAL: one fsync of the WAL file makes every commit appended before
/// it durable, which is what `synchronous=FULL` does at each commit
/// (<https://sqlite.org/wal.html#fsync>). Commits are counted as they reach the WAL (the WAL
/// hook, `count_commit`); an fsync covers the commits counted before it started, so a caller
/// whose commits one covers returns without another, and a caller with no commit since the last
/// fsync (a request that only read) makes none.
#[derive(Debug)]
pub struct WalSync {
    wal: PathBuf,
    /// Commits to this database so far, from every connection of the process.
    commits: &'static AtomicU64,
    /// Every commit up to this count is on disk.
    synced: AtomicU64,
    /// One fsync at a time; waiting callers queue here and mostly find theirs done.
    flushing: tokio::sync::Mutex<()>,
    /// fsyncs made, for tests and `waflow_wal_syncs_total`.
    syncs: AtomicU64,
}

impl WalSync {
    fn new(wal: PathBuf, commits: &'static AtomicU64) -> Self {
        Self {
            wal,
            // Nothing is known to be on disk yet: the first call flushes.
            synced: AtomicU64::new(0),
            commits,
            flushing: tokio::sync::Mutex::new(()),
            syncs: AtomicU64::new(0),
        }
    }

    async fn sync(&self) -> Result<(), DbErr> {
        // Counted before the caller's commit returned to it: this covers them.
        let seen = self.commits.load(Ordering::SeqCst);
        if self.synced.load(Ordering::SeqCst) >= seen {
            return Ok(());
        }
        let _flushing = self.flushing.lock().await;
        if self.synced.load(Ordering::SeqCst) >= seen {
            return Ok(());
        }
        // Read before the fsync: every commit counted here is already in the WAL file.
        let covered = self.commits.load(Ordering::SeqCst);
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || flush(&wal))
            .await
            .map_err(|e| DbErr::Custom(format!("cannot flush the SQLite WAL: {e}")))?
            .map_err(|e| DbErr::Custom(format!("cannot flush the SQLite WAL: {e}")))?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("waflow_wal_syncs_total").increment(1);
        self.synced.store(covered, Ordering::SeqCst);
        Ok(())
    }

    /// How many fsyncs were made.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

/// fsyncs the WAL file. No file means no WAL: SQLite checkpointed it into the database file,
/// with its own fsyncs, and deleted it when its last connection closed.
fn flush(wal: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database file that is removed, with its WAL, when dropped.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    async fn file_database() -> (Scratch, DatabaseConnection) {
        let path = std::env::temp_dir().join(format!("waflow-db-{}.db", uuid::Uuid::now_v7()));
        let db = connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        db.execute_unprepared("CREATE TABLE t (v TEXT)")
            .await
            .unwrap();
        (Scratch(path), db)
    }

    fn wal(durability: &Durability) -> &WalSync {
        match durability {
            Durability::AtWalSync(wal) => wal,
            Durability::AtCommit => panic!("a SQLite file needs WAL syncs"),
        }
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

    /// Twenty callers at once after their commits share one fsync; callers with no commit since
    /// the last fsync (a request that only read) make none; a commit on another connection is
    /// counted too.
    #[tokio::test]
    async fn fsyncs_are_shared_and_only_for_commits() {
        let (_dir, db) = file_database().await;
        let durability = Durability::of(&db).await.unwrap();
        let insert = |v: &'static str| {
            let db = db.clone();
            async move {
                db.execute_unprepared(&format!("INSERT INTO t VALUES ('{v}')"))
                    .await
                    .unwrap()
            }
        };
        insert("a").await;
        durability.sync().await.unwrap();
        assert_eq!(wal(&durability).syncs(), 1);

        db.query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT count(*) FROM t",
        ))
        .await
        .unwrap();
        durability.sync().await.unwrap();
        assert_eq!(wal(&durability).syncs(), 1, "a read has nothing to flush");

        futures::future::join_all((0..20).map(|_| insert("b"))).await;
        let callers = (0..20).map(|_| durability.sync());
        for outcome in futures::future::join_all(callers).await {
            outcome.unwrap();
        }
        assert_eq!(wal(&durability).syncs(), 2, "one fsync for twenty callers");

        // A transaction on a connection of its own, as apalis' queue makes them.
        let txn = begin_write(&db).await.unwrap();
        txn.execute_unprepared("INSERT INTO t VALUES ('c')")
            .await
            .unwrap();
        txn.commit().await.unwrap();
        durability.sync().await.unwrap();
        assert_eq!(wal(&durability).syncs(), 3);
    }

    /// The WAL hook that counts commits keeps SQLite's automatic checkpoints: the WAL restarts
    /// instead of growing while nothing reads.
    #[tokio::test]
    async fn commits_still_checkpoint_the_wal() {
        let (_dir, db) = file_database().await;
        let durability = Durability::of(&db).await.unwrap();
        for _ in 0..300 {
            db.execute_unprepared("INSERT INTO t VALUES (hex(randomblob(8000)))")
                .await
                .unwrap();
        }
        // 300 commits of five 4 KiB pages each: 1,500 frames without checkpoints.
        let size = std::fs::metadata(&wal(&durability).wal).unwrap().len();
        assert!(size < 1_200 * 4096, "{size} bytes of WAL");
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

    /// A WAL past its limit is checkpointed and emptied; one within it is left alone.
    #[tokio::test]
    async fn a_long_wal_is_truncated() {
        let (_dir, db) = file_database().await;
        let durability = Durability::of(&db).await.unwrap();
        for _ in 0..50 {
            db.execute_unprepared("INSERT INTO t VALUES (hex(randomblob(2000)))")
                .await
                .unwrap();
        }
        let wal = wal(&durability).wal.clone();
        let size = || std::fs::metadata(&wal).unwrap().len();
        let before = size();
        assert!(before > 100_000, "{before} bytes of WAL");
        durability.keep_wal_short(&db, before).await.unwrap();
        assert_eq!(size(), before);
        durability.keep_wal_short(&db, 1).await.unwrap();
        assert_eq!(size(), 0);
        let count = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT count(*) AS n FROM t",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(count.try_get::<i64>("", "n").unwrap(), 50);
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

    /// In-memory databases and PostgreSQL have nothing to flush.
    #[tokio::test]
    async fn memory_databases_are_durable_at_commit() {
        let db = connect("sqlite::memory:").await.unwrap();
        assert!(matches!(
            Durability::of(&db).await.unwrap(),
            Durability::AtCommit
        ));
    }
}
