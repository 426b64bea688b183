//! A production deployment in miniature for the process tests: `waflow serve --no-worker` and
//! `waflow worker` processes on a fresh PostgreSQL database and a Redis key prefix of their own,
//! logging JSON to files, plus a Cloud API stand-in that counts what reaches "Meta".

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use super::{Server, free_port, waflow, wait_healthy};

pub const SECRET_KEY: &str = "d2FmbG93LXRlc3RzLXNoYXJlZC1zZWNyZXQta2V5MzI=";
pub const APP_SECRET: &str = "process-test-app-secret";
pub const PHONE_NUMBER_ID: &str = "PN-PROCS";

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn admin_url() -> String {
    env_or(
        "WAFLOW_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

/// The processes of one test and what they share.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// The database as the test reaches it.
    pub database_url: String,
    database: String,
    /// The database and Redis as the processes reach them (a test may put a proxy between).
    pub process_database_url: String,
    pub redis_url: String,
    prefix: String,
    processes: BTreeMap<String, Server>,
}

impl Cluster {
    /// A fresh database and Redis prefix, or `None` (skipped, loudly) without PostgreSQL off CI.
    pub async fn new() -> Option<Self> {
        let admin_url = admin_url();
        let admin =
            match tokio::time::timeout(Duration::from_secs(5), Database::connect(&admin_url)).await
            {
                Ok(Ok(admin)) => admin,
                _ => {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "PostgreSQL at {admin_url} is required on CI"
                    );
                    eprintln!("\n*** SKIPPED: PostgreSQL at {admin_url} is not reachable ***\n");
                    return None;
                }
            };
        let database = format!("waflow_procs_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{database}\""))
            .await
            .unwrap();
        let database_url = format!("{}/{database}", admin_url.rsplit_once('/').unwrap().0);
        Some(Self {
            dir: tempfile::tempdir().unwrap(),
            process_database_url: database_url.clone(),
            database_url,
            database,
            redis_url: env_or("WAFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
            prefix: format!("waflow-procs-{}:", uuid::Uuid::now_v7().simple()),
            processes: BTreeMap::new(),
        })
    }

    fn env(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("DATABASE_URL", self.process_database_url.clone()),
            ("REDIS_URL", self.redis_url.clone()),
            ("WAFLOW_REDIS_PREFIX", self.prefix.clone()),
            ("WAFLOW_SECRET_KEY", SECRET_KEY.to_owned()),
            ("WAFLOW_LOG_FORMAT", "json".to_owned()),
            // The stand-ins for Meta and the CRM listen on 127.0.0.1.
            ("WAFLOW_ALLOW_PRIVATE_NETWORKS", "true".to_owned()),
            ("RUST_LOG", "info,waflow_jobs::worker=debug".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        env
    }

    /// Migrates the database and creates a workspace; returns its API key.
    pub fn workspace(&self) -> String {
        let vars = self.env(&[]);
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        super::create_workspace(self.dir.path(), &pairs)
    }

    fn spawn(&mut self, name: &str, args: &[&str], extra: &[(&'static str, String)]) {
        let vars = self.env(extra);
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))
            .unwrap();
        let child = waflow(self.dir.path(), args, &pairs)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.processes.insert(name.to_owned(), Server(child));
    }

    /// Starts `waflow serve --no-worker` as `name`, once healthy.
    pub async fn api(&mut self, name: &str, key: &str) -> Api {
        let listen = format!("127.0.0.1:{}", free_port());
        self.spawn(
            name,
            &["serve", "--no-worker"],
            &[("WAFLOW_LISTEN", listen.clone())],
        );
        let api = Api {
            base: format!("http://{listen}"),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        };
        wait_healthy(&api.base).await;
        api
    }

    /// Starts `waflow worker` as `name`, once it polls.
    pub async fn worker(&mut self, name: &str) {
        self.spawn(name, &["worker"], &[]);
        let path = self.log_path(name);
        until("a worker to start", Duration::from_secs(30), || async {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            log.contains("worker started").then_some(())
        })
        .await;
    }

    /// SIGKILLs `name`, as a crash or the OOM killer would.
    pub fn kill(&mut self, name: &str) {
        let mut process = self.processes.remove(name).expect("a running process");
        process.0.kill().unwrap();
        process.0.wait().unwrap();
    }

    fn processes_started(&self) -> Vec<String> {
        let entries = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten();
        let names = entries.filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            file.strip_suffix(".log").map(str::to_owned)
        });
        names.collect()
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// The last `lines` lines `name` logged, for a failure message.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.processes.clear();
        if std::thread::panicking() {
            for name in self.processes_started() {
                eprintln!("--- {name}'s last lines ---\n{}", self.log_tail(&name, 60));
            }
        }
        let name = self.database.clone();
        // Drop cannot await, and the test's runtime may be gone: a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url()).await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = admin.execute_unprepared(&drop).await;
                }
            });
        })
        .join();
    }
}

/// One API process, as a client sees it.
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    /// The whole GraphQL answer, errors included.
    pub async fn answer(&self, query: &str, variables: Value) -> Value {
        self.http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The data of an answer that must have no errors.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let answer = self.answer(query, variables).await;
        assert!(answer["errors"].is_null(), "{answer}");
        answer["data"].clone()
    }

    pub async fn run_status(&self, run_id: &str) -> String {
        let data = self
            .gql(
                "query($id: ID!) { flowRun(id: $id) { status } }",
                json!({"id": run_id}),
            )
            .await;
        data["flowRun"]["status"].as_str().unwrap().to_owned()
    }

    pub async fn live_flow(&self, definition: Value) -> String {
        let created = self
            .gql(
                "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
                json!({"input": {"name": "Flow", "definition": definition}}),
            )
            .await;
        let id = created["createFlow"]["id"].as_str().unwrap().to_owned();
        self.gql(
            "mutation($id: ID!) { publishFlow(id: $id) { id } setFlowEnabled(id: $id, enabled: true) { enabled } }",
            json!({"id": id}),
        )
        .await;
        id
    }

    pub async fn run_flow(&self, flow: &str, payload: Value) -> String {
        let data = self
            .gql(
                "mutation($id: ID!, $p: JSON!) { runFlow(id: $id, payload: $p) { id } }",
                json!({"id": flow, "p": payload}),
            )
            .await;
        data["runFlow"]["id"].as_str().unwrap().to_owned()
    }

    /// Waits until every run in `runs` has SUCCEEDED; names the first that did not.
    pub async fn all_succeed(&self, runs: &[String], within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        for run_id in runs {
            loop {
                let status = self.run_status(run_id).await;
                if status == "SUCCEEDED" {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("run {run_id} is still {status}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// A Cloud API sender whose provider is `meta`, its webhooks signed with [`APP_SECRET`],
    /// once a worker has found it ONLINE.
    pub async fn cloud_sender(&self, meta: &CloudApi) -> String {
        let data = self
            .gql(
                "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
                json!({"input": {"phoneNumber": "+14155550199", "displayName": "Acme", "provider": "CLOUD_API",
                    "cloudApi": {"phoneNumberId": PHONE_NUMBER_ID, "businessAccountId": "WABA-1",
                        "accessToken": "EAAG-process-test", "appSecret": APP_SECRET,
                        "verifyToken": "verify", "apiBaseUrl": meta.base_url}}}),
            )
            .await;
        let id = data["createSender"]["id"].as_str().unwrap().to_owned();
        until(
            "the sender to be online",
            Duration::from_secs(30),
            || async {
                let query = "query($id: ID!) { sender(id: $id) { status } }";
                let data = self.gql(query, json!({"id": id})).await;
                (data["sender"]["status"] == "ONLINE").then_some(())
            },
        )
        .await;
        id
    }

    /// Delivers `body` as Meta would, signed; returns the HTTP status.
    pub async fn webhook(&self, body: &Value) -> u16 {
        let bytes = serde_json::to_vec(body).unwrap();
        self.http
            .post(format!("{}/webhooks/whatsapp", self.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(&bytes))
            .body(bytes)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }
}

fn sign(body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Meta's webhook for one text from `from`, with Meta's message id `wamid`.
pub fn inbound_text(from: &str, wamid: &str, text: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA-1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "14155550199", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": from.trim_start_matches('+')}],
            "messages": [{"from": from.trim_start_matches('+'), "id": wamid,
                "timestamp": chrono::Utc::now().timestamp().to_string(),
                "type": "text", "text": {"body": text}}]}}]}]})
}

/// A Cloud API stand-in: the number is connected and GREEN, and every message is accepted
/// and kept, so a test can count what reached the provider.
pub struct CloudApi {
    pub base_url: String,
    sent: Arc<Mutex<Vec<Value>>>,
}

impl CloudApi {
    pub async fn start() -> Self {
        use axum::{Json, extract::State, routing::get, routing::post};
        let sent = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route(
                "/{number}",
                get(|| async {
                    Json(json!({"verified_name": "Acme", "display_phone_number": "+1 415-555-0199",
                        "quality_rating": "GREEN", "status": "CONNECTED",
                        "messaging_limit_tier": "TIER_1K", "name_status": "APPROVED", "id": PHONE_NUMBER_ID}))
                }),
            )
            .route(
                "/{number}/messages",
                post(
                    |State(sent): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>| async move {
                        let mut sent = sent.lock().unwrap();
                        sent.push(body);
                        Json(json!({"messaging_product": "whatsapp",
                            "messages": [{"id": format!("wamid.PROCS-{}", sent.len())}]}))
                    },
                ),
            )
            .with_state(sent.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, sent }
    }

    /// The text bodies of the messages sent so far.
    pub fn texts(&self) -> Vec<String> {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .filter_map(|m| m["text"]["body"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Waits for `check` to yield, up to `within`.
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The flow runs a worker's JSON log says it worked on (`job finished`) or took up (`job
/// started`).
pub fn runs_in_log(path: &Path, message: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["fields"]["message"] == message && e["span"]["kind"] == "flow_run")
        .filter_map(|e| e["span"]["run_id"].as_str().map(str::to_owned))
        .collect()
}
