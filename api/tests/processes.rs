//! The production profile as it is deployed: two `serve --no-worker` and two `worker`
//! processes on one PostgreSQL and one Redis. Events cross between API processes, flow runs
//! started through one API are worked by the workers sharing the queue, and a worker killed
//! (SIGKILL) while runs wait in a delay leaves them to the other one, each message sent once.

mod common;

use std::{
    collections::BTreeSet,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use common::{Server, Socket, free_port, run, subscribe, waflow, wait_healthy};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

const SECRET_KEY: &str = "d2FmbG93LXRlc3RzLXNoYXJlZC1zZWNyZXQta2V5MzI=";
const CUSTOMER: &str = "+14155550123";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A fresh PostgreSQL database for this test, or `None` (skipped, loudly) when PostgreSQL is
/// not running and this is not CI.
async fn fresh_database() -> Option<(String, String)> {
    let admin_url = env_or(
        "WAFLOW_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let admin =
        match tokio::time::timeout(Duration::from_secs(5), Database::connect(&admin_url)).await {
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
    let name = format!("waflow_procs_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0;
    Some((format!("{base}/{name}"), name))
}

struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn gql(&self, query: &str, variables: Value) -> Value {
        let answer: Value = self
            .http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer["errors"].is_null(), "{answer}");
        answer["data"].clone()
    }

    async fn run_status(&self, run_id: &str) -> String {
        self.gql(
            "query($id: ID!) { flowRun(id: $id) { status } }",
            json!({"id": run_id}),
        )
        .await["flowRun"]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn live_flow(&self, definition: Value) -> String {
        let id = self
            .gql(
                "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
                json!({"input": {"name": "Flow", "definition": definition}}),
            )
            .await["createFlow"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.gql(
            "mutation($id: ID!) { publishFlow(id: $id) { id } setFlowEnabled(id: $id, enabled: true) { enabled } }",
            json!({"id": id}),
        )
        .await;
        id
    }

    async fn run_flow(&self, flow: &str, payload: Value) -> String {
        self.gql(
            "mutation($id: ID!, $p: JSON!) { runFlow(id: $id, payload: $p) { id } }",
            json!({"id": flow, "p": payload}),
        )
        .await["runFlow"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
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

/// The flow runs a worker's JSON log says it worked on.
fn runs_in_log(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["fields"]["message"] == "job finished" && e["span"]["kind"] == "flow_run")
        .filter_map(|e| e["span"]["run_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_two_workers_share_one_postgres_and_redis() {
    let Some((database_url, database)) = fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("waflow-procs-{}:", uuid::Uuid::now_v7().simple());
    let redis_url = env_or("WAFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379");
    let env = |extra: &[(&'static str, String)]| {
        let mut env = vec![
            ("DATABASE_URL", database_url.clone()),
            ("REDIS_URL", redis_url.clone()),
            ("WAFLOW_REDIS_PREFIX", prefix.clone()),
            ("WAFLOW_SECRET_KEY", SECRET_KEY.to_owned()),
            ("WAFLOW_LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info,waflow_jobs::worker=debug".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        env
    };
    let borrowed = |env: &[(&'static str, String)]| -> Vec<(&'static str, String)> { env.to_vec() };
    let start = |args: &[&str], extra: &[(&'static str, String)], log: &str| {
        let vars = borrowed(&env(extra));
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let child = waflow(dir.path(), args, &pairs)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .unwrap();
        Server(child)
    };

    let vars = env(&[]);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let created = run(dir.path(), &["workspace", "create", "Acme"], &pairs);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();

    let listen = [free_port(), free_port()].map(|p| format!("127.0.0.1:{p}"));
    let api_one = start(
        &["serve", "--no-worker"],
        &[("WAFLOW_LISTEN", listen[0].clone())],
        "api-1.log",
    );
    let api_two = start(
        &["serve", "--no-worker"],
        &[("WAFLOW_LISTEN", listen[1].clone())],
        "api-2.log",
    );
    let mut worker_one = start(&["worker"], &[], "worker-1.log");
    let worker_two = start(&["worker"], &[], "worker-2.log");
    let [one, two] = listen.map(|l| Api {
        base: format!("http://{l}"),
        key: key.clone(),
        http: reqwest::Client::new(),
    });
    wait_healthy(&one.base).await;
    wait_healthy(&two.base).await;
    for log in ["worker-1.log", "worker-2.log"] {
        let path = dir.path().join(log);
        until("the workers to start", Duration::from_secs(30), || async {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .contains("worker started")
                .then_some(())
        })
        .await;
    }
    // Their first poll follows at once; leave it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A subscriber on one API process hears what happened through the other.
    let sender = one
        .gql(
            "mutation { createSender(input: {phoneNumber: \"+14155550100\", displayName: \"Acme\", provider: SANDBOX}) { id } }",
            json!({}),
        )
        .await["createSender"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut subscriber = subscribe(
        &two.base,
        &two.key,
        "subscription { messageReceived { message } }",
    )
    .await;
    one.gql(
        "mutation($input: SimulateInboundMessageInput!) { simulateInboundMessage(input: $input) { id } }",
        json!({"input": {"senderId": sender, "from": CUSTOMER, "text": "hello from process one"}}),
    )
    .await;
    let event = next_data(&mut subscriber).await;
    assert_eq!(
        event["messageReceived"]["message"],
        "hello from process one"
    );

    // Runs started through one API spread over both workers: each calls a CRM that takes
    // 300 ms, so a worker busy with a batch leaves the next batch to the other.
    let crm = slow_crm().await;
    let call = one
        .live_flow(json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "call", "type": "http_request", "url": format!("{crm}/slow")},
            {"id": "note", "type": "set_variables", "values": {"done": "yes"}}]}))
        .await;
    let mut runs = Vec::new();
    for n in 0..30 {
        runs.push(two.run_flow(&call, json!({"n": n})).await);
    }
    for run_id in &runs {
        until("the runs to finish", Duration::from_secs(60), || async {
            (one.run_status(run_id).await == "SUCCEEDED").then_some(())
        })
        .await;
    }
    let by_one = runs_in_log(&dir.path().join("worker-1.log"));
    let by_two = runs_in_log(&dir.path().join("worker-2.log"));
    let started: BTreeSet<String> = runs.iter().cloned().collect();
    assert!(
        started
            .iter()
            .all(|r| by_one.contains(r) || by_two.contains(r)),
        "every run was worked on by a worker"
    );
    // Which worker takes which run is up to the queue: a worker that finds jobs polls again at
    // once, so a burst may all go to one. Both share the queue; the split is printed.
    eprintln!(
        "runs per worker: {} and {}",
        by_one.intersection(&started).count(),
        by_two.intersection(&started).count()
    );

    // A worker dies while runs wait in a delay: the other finishes them, one message each.
    let reply = one
        .live_flow(json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "wait", "type": "delay", "seconds": 3},
            {"id": "tell", "type": "send_text", "senderId": sender, "to": CUSTOMER,
             "text": "after the crash {{ trigger.n }}"}]}))
        .await;
    let mut waiting = Vec::new();
    for n in 0..3 {
        waiting.push(one.run_flow(&reply, json!({"n": n})).await);
    }
    until(
        "a run to wait in its delay",
        Duration::from_secs(20),
        || async { (one.run_status(&waiting[0]).await == "WAITING").then_some(()) },
    )
    .await;
    worker_one.0.kill().unwrap();
    worker_one.0.wait().unwrap();
    // A job the dead worker had taken returns to the queue once its heartbeats are missed
    // (15 s); allow for that on a loaded machine, and say what was left if it does not.
    let deadline = Instant::now() + Duration::from_secs(120);
    for run_id in &waiting {
        loop {
            let status = one.run_status(run_id).await;
            if status == "SUCCEEDED" {
                break;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(dir.path().join("worker-2.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "run {run_id} is {status} two minutes after the worker died; the survivor's \
                     last lines:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let messages = one
        .gql(
            "{ conversations(first: 10) { edges { node { messages(first: 100) { edges { node { body direction } } } } } } }",
            json!({}),
        )
        .await;
    let bodies: Vec<String> = messages["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["node"]["messages"]["edges"].as_array().unwrap().clone())
        .filter(|m| m["node"]["direction"] == "OUTBOUND")
        .map(|m| m["node"]["body"].as_str().unwrap().to_owned())
        .collect();
    for n in 0..3 {
        let text = format!("after the crash {n}");
        assert_eq!(
            bodies.iter().filter(|b| **b == text).count(),
            1,
            "{text:?} exactly once: {bodies:?}"
        );
    }
    drop((api_one, api_two, worker_two));
    drop_database(&database).await;
}

async fn drop_database(name: &str) {
    let admin_url = env_or(
        "WAFLOW_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    if let Ok(admin) = Database::connect(&admin_url).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
    }
}

/// A CRM stand-in that answers after 300 ms; returns its base URL.
async fn slow_crm() -> String {
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            axum::Json(json!({"ok": true}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn next_data(socket: &mut Socket) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Text(text)) = message {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] == "next" {
                    return message["payload"]["data"].clone();
                }
            }
        }
        panic!("the subscription ended");
    })
    .await
    .expect("an event within 10 s")
}
