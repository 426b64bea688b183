//! Starting Waflow for a test: [`spawn_app`] and its variants serve a real server on a loopback
//! port over a database of the test's own, with its workers in the same runtime or, for the
//! durability tests, apart as [`Worker`]s that can be killed;
//! [`on_both_databases`](crate::on_both_databases) turns one test body into a SQLite test and a
//! PostgreSQL test.

use std::{net::SocketAddr, time::Duration};

use waflow_api::{AppState, router, serve_on};
use waflow_jobs::{RedisSettings, SecretBox, Services, db, worker};

use crate::databases::{Backend, RedisNamespace, TestDatabase, ci, redis_url, test_database};

/// A Waflow server running for one test, with what the test needs to speak to it and to look
/// behind it (its services, its database). Dropping it stops its workers and removes its database
/// and Redis keys.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// The API key of the workspace created for the test.
    pub key: String,
    pub services: Services,
    pub backend: Backend,
    /// Stops the workers when the test ends.
    _workers: tokio::sync::oneshot::Sender<()>,
    _redis: Option<RedisNamespace>,
    pub database: TestDatabase,
}

/// The secrets key of apps whose workers run apart ([`spawn_app_without_workers`]).
pub const SHARED_SECRET_KEY: &str = "d2FmbG93LXRlc3RzLXNoYXJlZC1zZWNyZXQta2V5MzI=";

/// Workers as another process would run them: their own runtime, their own connections to the
/// app's database and Redis prefix. `kill` stops them the way a crash does.
pub struct Worker {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Worker {
    pub fn start(app: &TestApp) -> Self {
        Self::start_with(app, |_| {})
    }

    /// A worker whose services `configure` changes first (crash points, lease, reconciler).
    pub fn start_with(
        app: &TestApp,
        configure: impl FnOnce(&mut Services) + Send + 'static,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a worker runtime");
        let url = app.database.url();
        let backend = app.backend;
        let redis = app._redis.as_ref().map(|r| RedisSettings {
            url: r.url.clone(),
            prefix: r.prefix.clone(),
        });
        runtime.spawn(async move {
            let db = db::connect(&url).await.expect("the worker connects");
            let secrets = SecretBox::from_base64(SHARED_SECRET_KEY).unwrap();
            let services = match (backend, redis) {
                (Backend::Postgres, Some(redis)) => Services::production(db, secrets, &redis).await,
                _ => Services::embedded(db, secrets).await,
            }
            .expect("the worker's services");
            let mut services = services;
            services.sandbox = sandbox();
            // The tests' stand-ins for Meta, models and receivers listen on 127.0.0.1.
            services.egress.allow_private_networks(true);
            configure(&mut services);
            worker::run(services, std::future::pending()).await
        });
        Self {
            runtime: Some(runtime),
        }
    }

    /// Stops every task where it is: no job finishes, no hold on a run is released. Not quite a
    /// SIGKILL: a task woken while the runtime shuts down (its connection's task dropped) can
    /// take one last step and send one last statement, as a process whose network broke just
    /// before it died would. The code must hold up under both.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl TestApp {
    /// The Redis key prefix of this test (production profile only).
    pub fn redis_prefix(&self) -> Option<&str> {
        self._redis.as_ref().map(|r| r.prefix.as_str())
    }

    /// Where every flow job is, for a failure message: on Redis the workers with their last
    /// heartbeat, the scheduled jobs with their due second, the ready jobs and each worker's
    /// in-flight jobs; on SQLite the queue's rows.
    pub async fn flow_queue_snapshot(&self) -> String {
        match &self._redis {
            Some(redis) => {
                let client = redis::Client::open(redis.url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let queue = format!("{}flows", redis.prefix);
                let mut lines = vec![format!(
                    "now {}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs_f64()
                )];
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{queue}*"))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                for key in keys {
                    let kind: String = redis::cmd("TYPE")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    let mut command = match kind.as_str() {
                        "zset" => redis::cmd("ZRANGE"),
                        "list" => redis::cmd("LRANGE"),
                        "set" => redis::cmd("SMEMBERS"),
                        _ => {
                            lines.push(format!("{key}: {kind}"));
                            continue;
                        }
                    };
                    command.arg(&key);
                    if kind != "set" {
                        command.arg(0).arg(-1);
                    }
                    if kind == "zset" {
                        command.arg("WITHSCORES");
                    }
                    let value: redis::Value = command.query_async(&mut conn).await.unwrap();
                    lines.push(format!("{key} ({kind}): {value:?}"));
                }
                lines.join("\n")
            }
            None => {
                use sea_orm::{ConnectionTrait, Statement};
                let rows = self
                    .services
                    .db
                    .query_all_raw(Statement::from_string(
                        sea_orm::DbBackend::Sqlite,
                        "SELECT id, status, run_at, lock_by, attempts FROM Jobs \
                         WHERE job_type = 'waflow-flows'",
                    ))
                    .await
                    .unwrap();
                rows.iter()
                    .map(|row| {
                        let text = |c: &str| row.try_get::<Option<String>>("", c).ok().flatten();
                        let number = |c: &str| row.try_get::<Option<i64>>("", c).ok().flatten();
                        format!(
                            "{:?} {:?} run_at {:?} lock_by {:?} attempts {:?}",
                            text("id"),
                            text("status"),
                            number("run_at"),
                            text("lock_by"),
                            number("attempts")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    /// Empties the flow queue, as if every flow job (ready, scheduled, or held by a worker) had
    /// been lost: what the reconciler exists for.
    pub async fn lose_flow_jobs(&self) {
        match &self._redis {
            Some(redis) => {
                let client = redis::Client::open(redis.url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let queue = format!("{}flows", redis.prefix);
                let mut keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{queue}:inflight*"))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                keys.extend([format!("{queue}:active"), format!("{queue}:scheduled")]);
                let _: () = redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            None => {
                use sea_orm::ConnectionTrait;
                self.services
                    .db
                    .execute_unprepared("DELETE FROM Jobs WHERE job_type = 'waflow-flows'")
                    .await
                    .unwrap();
            }
        }
    }
}

/// Starts a server and its workers over a fresh database with one workspace: the embedded
/// profile on SQLite, the production profile (PostgreSQL and Redis, under a key prefix of the
/// test's own) on PostgreSQL. `None` as for [`test_database`].
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// `spawn_app`, with `configure` changing the services (timeouts, say) before anything runs.
pub async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut Services),
) -> Option<TestApp> {
    spawn(backend, configure, true).await
}

/// A server with no workers in its process: tests start them as [`Worker`]s, and kill them.
/// Secrets are sealed with [`SHARED_SECRET_KEY`] so that those workers can read them.
pub async fn spawn_app_without_workers(backend: Backend) -> Option<TestApp> {
    spawn_app_without_workers_with(backend, |_| {}).await
}

/// `spawn_app_without_workers`, with `configure` changing the services (a backlog limit, say)
/// before anything runs.
pub async fn spawn_app_without_workers_with(
    backend: Backend,
    configure: impl FnOnce(&mut Services),
) -> Option<TestApp> {
    spawn(
        backend,
        |services| {
            services.secrets = SecretBox::from_base64(SHARED_SECRET_KEY).unwrap();
            configure(services);
        },
        false,
    )
    .await
}

async fn spawn(
    backend: Backend,
    configure: impl FnOnce(&mut Services),
    start_workers: bool,
) -> Option<TestApp> {
    // Server logs go to the test's captured output (shown when it fails); RUST_LOG tunes them.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let (db, guard) = test_database(backend).await?;
    let (services, redis) = match backend {
        Backend::Sqlite => (
            Services::embedded(db, SecretBox::random())
                .await
                .expect("embedded services"),
            None,
        ),
        Backend::Postgres => {
            let namespace = RedisNamespace {
                url: redis_url(),
                prefix: format!("waflow-test-{}:", uuid::Uuid::now_v7().simple()),
            };
            let settings = RedisSettings {
                url: namespace.url.clone(),
                prefix: namespace.prefix.clone(),
            };
            let services = match Services::production(db, SecretBox::random(), &settings).await {
                Ok(services) => services,
                Err(e) => {
                    assert!(!ci(), "Redis at {} is required on CI: {e}", settings.url);
                    eprintln!(
                        "\n*** SKIPPED: Redis at {} is not reachable ({e}); start it as the README says ***\n",
                        settings.url
                    );
                    return None;
                }
            };
            (services, Some(namespace))
        }
    };
    let mut services = services;
    services.sandbox = sandbox();
    // The tests' stand-ins for Meta, models and receivers listen on 127.0.0.1.
    services.egress.allow_private_networks(true);
    // Webhook retries a second apart, so tests see a whole retry series (production waits
    // minutes to an hour).
    services.webhook_backoff = vec![Duration::from_secs(1); 5];
    configure(&mut services);
    let (_, key) = services
        .workspaces()
        .create("Test workspace")
        .await
        .expect("create workspace");
    let addr = spawn_server(services.clone(), &[]).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    if start_workers {
        tokio::spawn(worker::run(services.clone(), async move {
            let _ = stopped.await;
        }));
        // The workers' first pass of periodic work refreshes every Cloud API sender. Let it
        // pass before the test makes any: one a test made would otherwise get a second status
        // check at a moment nobody chose, racing the test's own stand-in answers.
        first_ticker_pass(&services).await;
    }
    Some(TestApp {
        addr,
        http: reqwest::Client::new(),
        key: key.plaintext,
        services,
        backend,
        _workers: stop,
        _redis: redis,
        database: guard,
    })
}

/// A pool of the template sandbox of this package (`src/bin/template-sandbox.rs`), built
/// beside the test binaries. A pool per server or worker, as in production: its processes' pipes
/// belong to the runtime that started them, and each test has its own runtime.
pub fn sandbox() -> waflow_jobs::sandbox::Sandbox {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> → target/<profile>/template-sandbox
    let program = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("template-sandbox"))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        program.exists(),
        "{} is missing: build the waflow-tests package's binaries",
        program.display()
    );
    waflow_jobs::sandbox::Sandbox::command(program, &[])
}

async fn first_ticker_pass(services: &Services) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let claimed = waflow_entities::schedule_tick::Entity::find()
            .filter(waflow_entities::schedule_tick::Column::Name.eq("refresh-senders"))
            .one(&services.db)
            .await
            .ok()
            .flatten();
        if claimed.is_some() {
            // The claim is in; the senders are looked up right after it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the workers' first pass of periodic work did not come within 10 s");
}

/// Serves `services` on a free loopback port, with the given CORS origins.
pub async fn spawn_server(services: Services, cors_origins: &[&str]) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let origins: Vec<_> = cors_origins.iter().map(|o| o.parse().unwrap()).collect();
    let app = router(AppState::new(services), &origins);
    tokio::spawn(async move { serve_on(listener, app, std::future::pending()).await });
    addr
}

/// Defines, for each named `async fn(Backend)` (a test that spawns its app its own way), one
/// test on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await;
                }
            }
        )+
    };
}

/// Defines, for each named `async fn(TestApp)`, one test on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let app = $crate::spawn_app($crate::Backend::Sqlite).await.expect("SQLite is always available");
                    super::$name(app).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(app) = $crate::spawn_app($crate::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )+
    };
}
