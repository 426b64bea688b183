//! The database each test gets to itself: a SQLite file in a temporary directory, or a PostgreSQL
//! database created for the test and dropped after it; and, on PostgreSQL, the test's own Redis
//! key prefix, deleted with it.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use waflow_jobs::db;

/// Where PostgreSQL tests create their databases; `WAFLOW_TEST_POSTGRES_URL` overrides it.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which database a test runs on: SQLite with the embedded profile, or PostgreSQL with the
/// production profile (and Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The Redis keys of one test (`waflow-test-<uuid>:*`), deleted when it ends.
pub struct RedisNamespace {
    pub url: String,
    pub prefix: String,
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
            // apalis-redis lists every queue it has seen in one global set.
            let _: redis::RedisResult<()> = redis::cmd("ZREM")
                .arg("core:apalis:queues:list")
                .arg(format!("{prefix}system:workers"))
                .query(&mut conn);
        })
        .join();
    }
}

pub(crate) fn redis_url() -> String {
    std::env::var("WAFLOW_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A database that exists for one test and is removed with it.
pub enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

impl TestDatabase {
    /// How another process would connect to this database.
    pub fn url(&self) -> String {
        match self {
            TestDatabase::Sqlite(dir) => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("waflow.db").display()
            ),
            TestDatabase::Postgres { admin_url, name } => {
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }
}

fn postgres_admin_url() -> String {
    std::env::var("WAFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_ADMIN_URL.to_owned())
}

/// Whether this is a CI run, where a missing PostgreSQL or Redis fails the test instead of
/// skipping it.
pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A fresh, migrated database. `None` when PostgreSQL is wanted but not running and this is not
/// CI: the test then says so loudly and is skipped (on CI a missing service fails the test).
pub async fn test_database(backend: Backend) -> Option<(DatabaseConnection, TestDatabase)> {
    let (url, guard) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let guard = TestDatabase::Sqlite(dir);
            (guard.url(), guard)
        }
        Backend::Postgres => {
            let admin_url = postgres_admin_url();
            let admin = match tokio::time::timeout(
                Duration::from_secs(5),
                Database::connect(&admin_url),
            )
            .await
            {
                Ok(Ok(admin)) => admin,
                failure => {
                    let reason = match failure {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".into(),
                    };
                    assert!(
                        !ci(),
                        "PostgreSQL at {admin_url} is required on CI: {reason}"
                    );
                    eprintln!(
                        "\n*** SKIPPED: PostgreSQL at {admin_url} is not reachable ({reason}); start it as the README says ***\n"
                    );
                    return None;
                }
            };
            let name = format!("waflow_test_{}", uuid::Uuid::now_v7().simple());
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let guard = TestDatabase::Postgres {
                admin_url: admin_url.clone(),
                name,
            };
            (guard.url(), guard)
        }
    };
    let db = db::connect(&url).await.expect("connect to test database");
    db::migrate(&db).await.expect("migrate test database");
    Some((db, guard))
}
