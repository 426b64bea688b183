//! When a committed transaction is on disk: PostgreSQL at commit, an embedded SQLite file once
//! its WAL is flushed, which [`WalSync`] does once for every commit waiting.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

/// Counts the commits of connection `raw`'s database file for [`WalSync`] (the WAL hook,
/// `count_commit`); nothing for an in-memory database.
///
/// # Safety
/// `raw` must be an open connection, not used by another thread during the call.
pub(super) unsafe fn count_commits(raw: *mut libsqlite3_sys::sqlite3) {
    // SAFETY: the caller's; `count_commit`'s argument is a counter that lives as long as the
    // process.
    unsafe {
        if let Some(commits) = commits_of(&main_file(raw)) {
            libsqlite3_sys::sqlite3_wal_hook(
                raw,
                Some(count_commit),
                std::ptr::from_ref(commits).cast_mut().cast(),
            );
        }
    }
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
    // SAFETY: registered with a `&'static AtomicU64` (`count_commits`).
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
    use crate::db::{begin_write, connect, tests::file_database};

    /// `rows` commits of a row of `bytes` random bytes (twice that in hex) each.
    async fn insert_blobs(db: &DatabaseConnection, rows: usize, bytes: usize) {
        for _ in 0..rows {
            db.execute_unprepared(&format!("INSERT INTO t VALUES (hex(randomblob({bytes})))"))
                .await
                .unwrap();
        }
    }

    fn wal(durability: &Durability) -> &WalSync {
        match durability {
            Durability::AtWalSync(wal) => wal,
            Durability::AtCommit => panic!("a SQLite file needs WAL syncs"),
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
        insert_blobs(&db, 300, 8000).await;
        // 300 commits of about five 4 KiB pages each: 1,500 frames without checkpoints.
        let size = std::fs::metadata(&wal(&durability).wal).unwrap().len();
        assert!(size < 1_200 * 4096, "{size} bytes of WAL");
    }

    /// A WAL past its limit is checkpointed and emptied; one within it is left alone.
    #[tokio::test]
    async fn a_long_wal_is_truncated() {
        let (_dir, db) = file_database().await;
        let durability = Durability::of(&db).await.unwrap();
        insert_blobs(&db, 50, 2000).await;
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
