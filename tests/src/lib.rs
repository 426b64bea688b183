//! The end-to-end harness: `spawn_app` starts a real Waflow server on a loopback port, over a
//! database of its own (a fresh SQLite file, or a fresh PostgreSQL database that is dropped
//! afterwards), with a workspace and its API key ready; tests then speak HTTP to it.

pub mod inbound;
pub mod meta_rules;

use std::{net::SocketAddr, time::Duration};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use waflow_api::{AppState, router, serve_on};
use waflow_jobs::{RedisSettings, SecretBox, Services, db, worker};

/// Where PostgreSQL tests create their databases; `WAFLOW_TEST_POSTGRES_URL` overrides it.
pub const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

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

    /// Stops every task where it is: no job finishes, no hold on a run is released.
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

fn redis_url() -> String {
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

fn ci() -> bool {
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
    spawn(
        backend,
        |services| services.secrets = SecretBox::from_base64(SHARED_SECRET_KEY).unwrap(),
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

impl TestApp {
    /// The Redis key prefix of this test (production profile only).
    pub fn redis_prefix(&self) -> Option<&str> {
        self._redis.as_ref().map(|r| r.prefix.as_str())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs a GraphQL document with the test workspace's key; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(Some(&self.key), query, variables).await
    }

    /// Runs a GraphQL document with another key (or none).
    pub async fn gql_as(&self, key: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON response")
    }

    /// Runs a document that must succeed; returns its `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Creates another workspace and returns its API key.
    pub async fn other_workspace(&self) -> String {
        let (_, key) = self
            .services
            .workspaces()
            .create("Other workspace")
            .await
            .unwrap();
        key.plaintext
    }

    /// Creates a SANDBOX sender and returns its id.
    pub async fn sandbox_sender(&self, phone: &str) -> String {
        let data = self
            .ok(
                "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
                json!({"input": {"phoneNumber": phone, "displayName": "Acme", "provider": "SANDBOX"}}),
            )
            .await;
        data["createSender"]["id"].as_str().unwrap().to_owned()
    }
}

/// The `extensions.code` of a response's first error.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The fields a VALIDATION_FAILED error names.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"][0]["extensions"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
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

/// Credentials of the Cloud API senders tests create.
pub const ACCESS_TOKEN: &str = "EAAG-test-access-token";
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const BUSINESS_ACCOUNT_ID: &str = "WABA-1";

/// A local stand-in for Meta's Graph API that speaks its wire format and refuses the messages
/// Meta refuses (`meta_rules`), checking templates against those it lists.
pub struct Meta {
    pub server: wiremock::MockServer,
    /// What `lists_templates` listed: the business account's templates.
    templates: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Meta {
    pub async fn start() -> Self {
        Self {
            server: wiremock::MockServer::start().await,
            templates: Default::default(),
        }
    }

    /// The `apiBaseUrl` a sender uses to reach this stand-in.
    pub fn base_url(&self) -> String {
        format!("{}/v21.0", self.server.uri())
    }

    /// Answers `GET /{phone_number_id}` like Meta for a healthy number.
    pub async fn number_is_connected(&self, phone_number_id: &str, quality: &str) {
        use wiremock::matchers::{header, method, path};
        wiremock::Mock::given(method("GET"))
            .and(path(format!("/v21.0/{phone_number_id}")))
            .and(header("authorization", format!("Bearer {ACCESS_TOKEN}").as_str()))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
                "verified_name": "Acme", "display_phone_number": "+1 415-555-0199", "quality_rating": quality,
                "status": "CONNECTED", "messaging_limit_tier": "TIER_1K", "name_status": "APPROVED", "id": phone_number_id
            })))
            .mount(&self.server)
            .await;
    }

    /// Accepts every message sent through `phone_number_id` that Meta would accept, each with a
    /// fresh `wamid`, answering as Meta does (`contacts[].input` and `wa_id` echo the `to`);
    /// refuses the others with Meta's error (`meta_rules`).
    pub async fn accepts_messages(&self, phone_number_id: &str) {
        use wiremock::matchers::{method, path};
        struct Accepts(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);
        impl wiremock::Respond for Accepts {
            fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
                let body = serde_json::from_slice::<Value>(&request.body).unwrap_or_default();
                let templates = self.0.lock().unwrap().clone();
                if let Some(refusal) = meta_rules::refusal(&body, &templates) {
                    return wiremock::ResponseTemplate::new(meta_rules::status(&refusal))
                        .set_body_json(refusal);
                }
                let to = body["to"].clone();
                wiremock::ResponseTemplate::new(200).set_body_json(json!({
                    "messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": format!("wamid.ACCEPTED-{}", uuid::Uuid::now_v7().simple())}]}))
            }
        }
        wiremock::Mock::given(method("POST"))
            .and(path(format!("/v21.0/{phone_number_id}/messages")))
            .respond_with(Accepts(self.templates.clone()))
            .mount(&self.server)
            .await;
    }

    /// Lists `templates` (entries of `GET /{waba-id}/message_templates`) to every sync; sends
    /// are checked against them.
    pub async fn lists_templates(&self, templates: Value) {
        use wiremock::matchers::{method, path};
        self.templates
            .lock()
            .unwrap()
            .extend(templates.as_array().cloned().unwrap_or_default());
        wiremock::Mock::given(method("GET"))
            .and(path(format!(
                "/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates"
            )))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
                json!({"data": templates, "paging": {"cursors": {"before": "a", "after": "b"}}}),
            ))
            .mount(&self.server)
            .await;
    }

    /// The requests the stand-in received with `method` whose path ends with `suffix`.
    pub async fn requests(&self, method: &str, suffix: &str) -> Vec<wiremock::Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == method && r.url.path().ends_with(suffix))
            .collect()
    }
}

/// A local stand-in for an OpenAI-compatible Chat Completions API (`POST /v1/chat/completions`).
pub struct Llm {
    pub server: wiremock::MockServer,
}

/// The key assistants in tests use for the stand-in model.
pub const LLM_KEY: &str = "sk-test-llm-key";

impl Llm {
    pub async fn start() -> Self {
        Self {
            server: wiremock::MockServer::start().await,
        }
    }

    /// The `baseUrl` an assistant uses to reach this stand-in.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.uri())
    }

    /// A Chat Completions answer whose first choice says `content`.
    pub fn completion(content: &str) -> wiremock::ResponseTemplate {
        wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000, "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }))
    }

    /// Every chat request (not an evaluation) is answered with `content`.
    pub async fn replies(&self, content: &str) {
        self.replies_with(Self::completion(content)).await;
    }

    /// Every chat request (not an evaluation) is answered with `response`.
    pub async fn replies_with(&self, response: wiremock::ResponseTemplate) {
        use wiremock::matchers::{method, path};
        wiremock::Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(NoResponseFormat)
            .respond_with(response)
            .mount(&self.server)
            .await;
    }

    /// Evaluation requests (those with a `response_format`) are answered with `content`.
    pub async fn evaluates(&self, content: &str) {
        use wiremock::matchers::{body_string_contains, method, path};
        wiremock::Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_string_contains("response_format"))
            .respond_with(Self::completion(content))
            .mount(&self.server)
            .await;
    }

    /// The JSON bodies of the chat requests received, oldest first; `evaluations` picks those
    /// with a `response_format` instead of the others.
    pub async fn bodies(&self, evaluations: bool) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == "/v1/chat/completions")
            .map(|r| serde_json::from_slice::<Value>(&r.body).expect("a JSON request"))
            .filter(|body| body.get("response_format").is_some() == evaluations)
            .collect()
    }

    /// The `Authorization` headers of every request received.
    pub async fn authorizations(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| {
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// Matches chat requests that are not evaluations.
struct NoResponseFormat;

impl wiremock::Match for NoResponseFormat {
    fn matches(&self, request: &wiremock::Request) -> bool {
        serde_json::from_slice::<Value>(&request.body)
            .is_ok_and(|body| body.get("response_format").is_none())
    }
}

/// The `messages` of a chat request as (role, content) pairs.
pub fn chat_messages(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A local endpoint registered for outgoing webhooks; it answers 200 to everything.
pub struct WebhookReceiver {
    pub server: wiremock::MockServer,
}

impl WebhookReceiver {
    /// Starts the receiver and registers it in `app`'s workspace for `events`.
    pub async fn register(app: &TestApp, events: Value) -> Self {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&server)
            .await;
        app.ok(
            "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { id } }",
            json!({"input": {"url": server.uri(), "events": events}}),
        )
        .await;
        Self { server }
    }

    /// The first delivery's JSON body, once it came.
    pub async fn first_delivery(&self, what: &str) -> Value {
        eventually(what, || async {
            let requests = self.server.received_requests().await.unwrap_or_default();
            requests
                .first()
                .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        })
        .await
    }
}

/// A Meta error body as the Cloud API sends it.
pub fn meta_error(code: i64, message: &str) -> Value {
    json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": format!("{message} (details)")},
        "fbtrace_id": "AbCdEf"}})
}

/// `X-Hub-Signature-256` of `body` under `secret`.
pub fn sign(body: &[u8], secret: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Waits (up to 15 s) until `check` yields a value; panics with `what` otherwise. For effects of
/// background jobs, which land a moment after the request that caused them.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl TestApp {
    /// Creates a CLOUD_API sender that talks to `meta`, and waits until its status refresh made it
    /// ONLINE. Returns its id.
    pub async fn cloud_sender(&self, meta: &Meta, phone: &str, phone_number_id: &str) -> String {
        meta.number_is_connected(phone_number_id, "GREEN").await;
        let data = self
            .ok(
                "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
                json!({"input": {"phoneNumber": phone, "displayName": "Acme", "provider": "CLOUD_API",
                    "cloudApi": {"phoneNumberId": phone_number_id, "businessAccountId": BUSINESS_ACCOUNT_ID,
                        "accessToken": ACCESS_TOKEN, "appSecret": APP_SECRET, "verifyToken": VERIFY_TOKEN,
                        "apiBaseUrl": meta.base_url()}}}),
            )
            .await;
        let id = data["createSender"]["id"].as_str().unwrap().to_owned();
        eventually("the new sender's status refresh", || async {
            let data = self
                .ok(
                    "query($id: ID!) { sender(id: $id) { status } }",
                    json!({"id": id}),
                )
                .await;
            (data["sender"]["status"] == "ONLINE").then_some(())
        })
        .await;
        id
    }

    /// Waits until the message WhatsApp calls `wamid` is stored; returns Waflow's id for it.
    pub async fn message_id_of(&self, wamid: &str) -> String {
        eventually(&format!("message {wamid} to be stored"), || async {
            let data = self
                .ok(
                    "{ conversations(first: 20) { edges { node { messages(first: 100) { edges { node { id providerMessageId } } } } } } }",
                    json!({}),
                )
                .await;
            data["conversations"]["edges"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["node"]["messages"]["edges"].as_array().cloned().unwrap_or_default())
                .find(|e| e["node"]["providerMessageId"] == wamid)
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        })
        .await
    }

    /// Runs `syncTemplates` for `sender_id`; returns how many templates it created.
    pub async fn sync_templates(&self, sender_id: &str) -> u64 {
        self.ok(
            "mutation($id: ID!) { syncTemplates(senderId: $id) { created } }",
            json!({"id": sender_id}),
        )
        .await["syncTemplates"]["created"]
            .as_u64()
            .unwrap()
    }

    /// Delivers a webhook as Meta would, signed with `secret`; returns the HTTP status.
    pub async fn webhook(&self, body: &Value, secret: Option<&str>) -> u16 {
        let bytes = serde_json::to_vec(body).unwrap();
        let mut request = self
            .http
            .post(self.url("/webhooks/whatsapp"))
            .header("content-type", "application/json");
        if let Some(secret) = secret {
            request = request.header("x-hub-signature-256", sign(&bytes, secret));
        }
        request.body(bytes).send().await.unwrap().status().as_u16()
    }

    /// Sends a text to `sender_id` as the customer `from`, through the sandbox.
    pub async fn customer_writes(&self, sender_id: &str, from: &str, text: &str) -> Value {
        let data = self
            .ok(
                "mutation($input: SimulateInboundMessageInput!) { simulateInboundMessage(input: $input) { \
                   id body status direction conversation { id messageCount } } }",
                json!({"input": {"senderId": sender_id, "from": from, "text": text, "name": "Ana"}}),
            )
            .await;
        data["simulateInboundMessage"].clone()
    }

    /// Creates a template for `sender_id` in English, with a sample per body placeholder, and
    /// approves it (the sandbox plays Meta's review); returns its id.
    pub async fn approved_template(
        &self,
        sender_id: &str,
        name: &str,
        category: &str,
        body: &str,
    ) -> String {
        let data = self
            .ok(
                "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
                json!({"input": {"senderId": sender_id, "name": name, "language": "en", "category": category,
                       "components": {"body": body, "bodyExamples": body_examples(body)}}}),
            )
            .await;
        let id = data["createTemplate"]["id"].as_str().unwrap().to_owned();
        self.ok(
            "mutation($id: ID!) { setTemplateStatus(id: $id, status: APPROVED) { id } }",
            json!({"id": id}),
        )
        .await;
        id
    }

    /// Creates an assistant; returns its id.
    pub async fn assistant(&self, input: Value) -> String {
        let data = self
            .ok(
                "mutation($input: CreateAssistantInput!) { createAssistant(input: $input) { id } }",
                json!({"input": input}),
            )
            .await;
        data["createAssistant"]["id"].as_str().unwrap().to_owned()
    }

    /// A conversation's messages as (role, body), oldest first.
    pub async fn conversation_messages(&self, conversation_id: &str) -> Vec<(String, String)> {
        let data = self
            .ok(
                "query($id: ID!) { conversation(id: $id) { messages(first: 100) { edges { node { role body } } } } }",
                json!({"id": conversation_id}),
            )
            .await;
        data["conversation"]["messages"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["node"]["role"].as_str().unwrap().to_owned(),
                    e["node"]["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Reads one message's status.
    pub async fn message_status(&self, id: &str) -> String {
        let data = self
            .ok(
                "query($id: ID!) { message(id: $id) { status } }",
                json!({"id": id}),
            )
            .await;
        data["message"]["status"].as_str().unwrap().to_owned()
    }
}

/// A sample value per placeholder of a template's `body`, as Meta's review requires.
pub fn body_examples(body: &str) -> Vec<String> {
    let count = waflow_jobs::placeholders::Placeholders::parse(body).map_or(0, |p| p.count());
    (1..=count).map(|n| format!("example {n}")).collect()
}

/// Meta's webhook envelope around one `messages` change for `phone_number_id`.
pub fn messages_webhook(phone_number_id: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({"display_phone_number": "14155550199", "phone_number_id": phone_number_id});
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": BUSINESS_ACCOUNT_ID, "changes": [{"field": "messages", "value": value}]}]})
}

/// A GraphQL subscription client speaking graphql-transport-ws, as the `graphql-ws` library does.
pub struct Subscriber {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// How a subscription connection ended when it was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
}

impl TestApp {
    /// Connects to `/graphql/ws` and sends `connection_init` with `key`; `Err` with the close
    /// code when the server refuses.
    pub async fn subscriber(&self, key: &str) -> Result<Subscriber, Closed> {
        self.subscriber_at(self.addr, key).await
    }

    /// `subscriber`, to the server at `addr` (another process of the same deployment).
    pub async fn subscriber_at(&self, addr: SocketAddr, key: &str) -> Result<Subscriber, Closed> {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
        let mut request = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket upgrade");
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {key}")}});
        socket
            .send(Message::Text(init.to_string().into()))
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer to connection_init")
        {
            Some(Ok(Message::Text(text))) => {
                let ack: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(ack["type"], "connection_ack", "{ack}");
                Ok(Subscriber { socket })
            }
            Some(Ok(Message::Close(frame))) => Err(Closed {
                code: frame.map_or(0, |f| u16::from(f.code)),
            }),
            other => panic!("unexpected answer to connection_init: {other:?}"),
        }
    }
}

impl Subscriber {
    pub async fn subscribe(&mut self, id: &str, query: &str) {
        use futures::SinkExt;
        let message = json!({"id": id, "type": "subscribe", "payload": {"query": query}});
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                message.to_string().into(),
            ))
            .await
            .unwrap();
        // The subscription is registered once the server has read the message; give it a beat
        // by round-tripping a ping.
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                json!({"type": "ping"}).to_string().into(),
            ))
            .await
            .unwrap();
        loop {
            let message = self.next_message().await.expect("pong");
            if message["type"] == "pong" {
                return;
            }
        }
    }

    /// The next message the server sends (`None` once the socket closed).
    pub async fn next_message(&mut self) -> Option<Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match self.socket.next().await? {
                Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends `text` as it is, well-formed or not.
    pub async fn send_raw(&mut self, text: &str) {
        use futures::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .unwrap();
    }

    /// Sends `text`, and says whether it went out: a server that stopped reading (a message
    /// over its limit) may reset the connection under a large one.
    pub async fn try_send_raw(&mut self, text: &str) -> bool {
        use futures::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .is_ok()
    }

    /// Whether the server ends the connection (a close frame, or a reset) within `wait`.
    pub async fn ended(&mut self, wait: Duration) -> bool {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The close code the server ends the connection with, within `wait`.
    pub async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
            {
                Ok(Message::Close(frame)) => return Some(frame.map_or(0, |f| u16::from(f.code))),
                Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next `next` payload's data, within `wait`; `None` when nothing arrives.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.next_message())
                .await
                .ok()??;
            match message["type"].as_str() {
                Some("next") => return Some(message["payload"]["data"].clone()),
                Some("error") => panic!("subscription error: {message}"),
                _ => {}
            }
        }
    }
}
