//! The system under test: a fresh PostgreSQL database and a unique Redis key prefix per run,
//! `waflow serve` / `waflow worker` child processes in the production profile (killed and the
//! database dropped when the deployment is dropped, also on panic), and a GraphQL client.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{Global, Result};

/// The key that encrypts provider secrets at rest (32 bytes, base64); the same in every process.
pub const SECRET_KEY: &str = "d2FmbG93LXRlc3RzLXNoYXJlZC1zZWNyZXQta2V5MzI=";

/// Runs `psql` against `url` and returns its unaligned output. The server is shared (100
/// connections): a refusal for too many clients is retried for up to 2 minutes.
pub fn psql(url: &str, sql: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-tAqc", sql])
            .output()?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        let error = String::from_utf8_lossy(&out.stderr);
        if !error.contains("too many clients") || Instant::now() > deadline {
            return Err(format!("psql: {error}").into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A database created for one run and dropped with it.
pub struct Database {
    pub name: String,
    pub url: String,
    admin: String,
}

impl Database {
    pub fn create(admin: &str) -> Result<Self> {
        let name = format!("waflow_bench_{}", uuid::Uuid::now_v7().simple());
        psql(admin, &format!("CREATE DATABASE \"{name}\""))?;
        let base = admin.rsplit_once('/').ok_or("no database in the URL")?.0;
        Ok(Self {
            url: format!("{base}/{name}"),
            name,
            admin: admin.to_owned(),
        })
    }

    pub fn scalar(&self, sql: &str) -> Result<String> {
        psql(&self.url, sql)
    }

    /// Transactions committed in this database so far (pg_stat_database.xact_commit).
    pub fn commits(&self) -> Result<u64> {
        let sql = format!(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = '{}'",
            self.name
        );
        Ok(psql(&self.admin, &sql)?.parse()?)
    }
}

/// Where a deployment keeps its data: a PostgreSQL database of its own (production), or a
/// SQLite file in its directory (embedded), queried with `psql` or `sqlite3`.
pub enum Store {
    Postgres(Database),
    Sqlite(PathBuf),
}

impl Store {
    pub fn scalar(&self, sql: &str) -> Result<String> {
        match self {
            Store::Postgres(db) => db.scalar(sql),
            Store::Sqlite(path) => {
                let out = Command::new("sqlite3")
                    .args(["-cmd", ".timeout 10000"])
                    .arg(path)
                    .arg(sql)
                    .output()?;
                if !out.status.success() {
                    let error = String::from_utf8_lossy(&out.stderr);
                    return Err(format!("sqlite3: {error}").into());
                }
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            }
        }
    }

    /// Transactions committed so far; PostgreSQL only.
    pub fn commits(&self) -> Result<u64> {
        match self {
            Store::Postgres(db) => db.commits(),
            Store::Sqlite(_) => Err("SQLite counts no commits".into()),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(error) = psql(&self.admin, &drop) {
            eprintln!("could not drop {}: {error}", self.name);
        }
    }
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One running waflow process.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

/// A deployment: the database, the Redis prefix (production), the processes and the key.
pub struct Deployment {
    procs: Vec<Proc>,
    pub db: Store,
    pub dir: PathBuf,
    pub prefix: String,
    pub key: String,
    pub apis: Vec<String>,
    /// Settings given to every process started after they are set (`WAFLOW_…` variables).
    pub env: Vec<(String, String)>,
    global: Global,
}

impl Deployment {
    /// The production profile: a fresh PostgreSQL database and a workspace in it (which
    /// applies the migrations).
    pub fn new(global: &Global) -> Result<Self> {
        Self::with_store(global, |_| {
            Ok(Store::Postgres(Database::create(&global.postgres)?))
        })
    }

    /// The embedded profile: a SQLite file (jobs included) in the deployment's directory, no
    /// Redis.
    pub fn embedded(global: &Global) -> Result<Self> {
        Self::with_store(global, |dir| Ok(Store::Sqlite(dir.join("waflow.db"))))
    }

    fn with_store(global: &Global, store: impl FnOnce(&PathBuf) -> Result<Store>) -> Result<Self> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let dir = std::env::temp_dir().join(format!("waflow-bench-{id}"));
        std::fs::create_dir_all(&dir)?;
        let mut deployment = Self {
            procs: Vec::new(),
            db: store(&dir)?,
            dir,
            prefix: format!("waflow-bench-{id}:"),
            key: String::new(),
            apis: Vec::new(),
            env: Vec::new(),
            global: global.clone(),
        };
        let out = deployment
            .command(&["workspace", "create", "Bench"])
            .output()?;
        if !out.status.success() {
            return Err(
                format!("workspace create: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        let stdout = String::from_utf8(out.stdout)?;
        deployment.key = stdout.lines().last().unwrap_or_default().trim().to_owned();
        Ok(deployment)
    }

    /// `waflow args` with only the profile's environment (and PATH) set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.global.waflow);
        cmd.current_dir(&self.dir)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        match &self.db {
            Store::Postgres(db) => {
                let database_url = match &self.global.database_params {
                    Some(params) => format!("{}?{params}", db.url),
                    None => db.url.clone(),
                };
                cmd.env("DATABASE_URL", database_url)
                    .env("REDIS_URL", &self.global.redis)
                    .env("WAFLOW_REDIS_PREFIX", &self.prefix);
            }
            Store::Sqlite(path) => {
                cmd.env(
                    "DATABASE_URL",
                    format!("sqlite://{}?mode=rwc", path.display()),
                );
            }
        }
        cmd.env("WAFLOW_SECRET_KEY", SECRET_KEY)
            // The Cloud API stand-in listens on 127.0.0.1.
            .env("WAFLOW_ALLOW_PRIVATE_NETWORKS", "true");
        if let Some(log) = &self.global.rust_log {
            cmd.env("RUST_LOG", log);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn spawn(&mut self, name: String, mut cmd: Command) -> Result<()> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn()?;
        self.procs.push(Proc { name, child });
        Ok(())
    }

    /// Starts `waflow serve` (with its workers unless `no_worker`) and waits until it is ready.
    pub async fn start_api(&mut self, no_worker: bool) -> Result<String> {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let mut args = vec!["serve"];
        if no_worker {
            args.push("--no-worker");
        }
        let mut cmd = self.command(&args);
        cmd.env("WAFLOW_LISTEN", &listen);
        let name = format!("api-{}", self.apis.len() + 1);
        self.spawn(name, cmd)?;
        let base = format!("http://{listen}");
        wait_ready(&base).await?;
        self.apis.push(base.clone());
        Ok(base)
    }

    /// Starts `waflow worker` and waits until its log says it started.
    pub async fn start_worker(&mut self) -> Result<()> {
        let n = self
            .procs
            .iter()
            .filter(|p| p.name.starts_with("worker"))
            .count();
        let name = format!("worker-{}", n + 1);
        let cmd = self.command(&["worker"]);
        self.spawn(name.clone(), cmd)?;
        let log = self.dir.join(format!("{name}.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("worker started")
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{name} did not start: see {}", log.display()).into())
    }

    /// Every process's name and pid.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.child.id()))
            .collect()
    }

    /// Commands the whole Redis server has processed so far (other users included).
    pub fn redis_commands(&self) -> Result<u64> {
        redis_commands(&self.global.redis)
    }

    pub fn api(&self, index: usize) -> Api {
        Api::new(&self.apis[index], &self.key)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
        delete_redis_keys(&self.global.redis, &self.prefix);
        if std::env::var_os("WAFLOW_BENCH_KEEP_LOGS").is_some() {
            eprintln!("logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Deletes the keys under this run's `prefix` (queues, timers, rate limits): only those.
fn delete_redis_keys(url: &str, prefix: &str) {
    let scan = Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", &format!("{prefix}*")])
        .output();
    let Ok(scan) = scan else {
        return;
    };
    let keys = String::from_utf8_lossy(&scan.stdout);
    let keys: Vec<&str> = keys.lines().filter(|k| k.starts_with(prefix)).collect();
    for batch in keys.chunks(500) {
        let _ = Command::new("redis-cli")
            .args(["-u", url, "DEL"])
            .args(batch)
            .output();
    }
}

/// `INFO stats` total_commands_processed of the Redis at `url`.
pub fn redis_commands(url: &str) -> Result<u64> {
    let out = Command::new("redis-cli")
        .args(["-u", url, "INFO", "stats"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .ok_or("no total_commands_processed in INFO stats")?;
    Ok(value.trim().parse()?)
}

/// Waits until `GET /readyz` answers 200.
pub async fn wait_ready(base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("waflow at {base} did not become ready").into())
}

/// A GraphQL client with the workspace key.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.to_owned(),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// A counter of the server's `/metrics` (summed over its label sets); 0 when absent.
    pub async fn counter(&self, name: &str) -> Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum())
    }

    /// Runs a query; its GraphQL errors are an error.
    pub async fn gql(&self, query: &str, variables: Value) -> Result<Value> {
        let answer: Value = self
            .http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await?
            .json()
            .await?;
        if !answer["errors"].is_null() {
            return Err(format!("GraphQL error: {}", answer["errors"]).into());
        }
        Ok(answer["data"].clone())
    }
}
