//! The `waflow` binary under the attacks a hostile workspace tried (issue 15), one after the
//! other: its `/healthz` answers within a second throughout, its memory stays within 100 MB of
//! where it started, and every attack gets a clear error. The server is a process of its own
//! here, so its memory is its own (the e2e tests check each refusal in detail).

mod common;

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Server, cluster::Api, create_workspace, free_port, waflow, wait_healthy};
use serde_json::{Value, json};

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A server answering `/huge` with a gigabyte, as it goes, for as long as it is read.
async fn huge_answers() -> String {
    let app = axum::Router::new().route(
        "/huge",
        axum::routing::get(|| async {
            let chunk = bytes_of(64 * 1024);
            let stream = futures::stream::iter(
                (0..(1 << 30) / chunk.len()).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            axum::body::Body::from_stream(stream)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/huge")
}

fn bytes_of(n: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b'z'; n])
}

/// The hostile workspace's client.
struct Attacker(Api);

impl Attacker {
    async fn dry_run(&self, steps: Value) -> Value {
        let query = "query($d: JSON!) { testFlowDefinition(definition: $d, payload: {}, allowHttp: true) { status error } }";
        self.0
            .answer(
                query,
                json!({"d": {"trigger": {"type": "manual"}, "steps": steps}}),
            )
            .await
    }

    async fn gql(&self, query: &str, variables: Value) -> Value {
        self.0.answer(query, variables).await
    }
}

fn refused_with(answer: &Value, words: &str) {
    let text = answer.to_string();
    assert!(text.contains(words), "expected {words:?} in {text}");
    assert!(text.len() < 20_000, "the answer is small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_holds_up_under_every_attack() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_workspace(dir.path(), &[]);
    let listen = format!("127.0.0.1:{}", free_port());
    let child = waflow(
        dir.path(),
        &["serve"],
        &[
            ("WAFLOW_LISTEN", &listen),
            // The gigabyte server below listens on 127.0.0.1.
            ("WAFLOW_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let pid = child.id();
    let _server = Server(child);
    let base = format!("http://{listen}");
    wait_healthy(&base).await;
    let attacker = Attacker(Api {
        base: base.clone(),
        key,
        http: reqwest::Client::new(),
    });
    // Warm up (schema, pools, the sandbox pool), then measure from there.
    attacker
        .dry_run(json!([{"id": "a", "type": "set_variables", "values": {"x": "{{ 1 }}"}}]))
        .await;
    let start = rss_of(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(start));
    let watcher = tokio::spawn({
        let (stop, slowest, peak, url) = (
            stop.clone(),
            slowest.clone(),
            peak.clone(),
            format!("{base}/healthz"),
        );
        async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let asked = Instant::now();
                let answer = tokio::time::timeout(Duration::from_secs(5), http.get(&url).send());
                let ok = answer
                    .await
                    .is_ok_and(|r| r.is_ok_and(|r| r.status() == 200));
                let took = if ok {
                    asked.elapsed().as_millis() as u64
                } else {
                    u64::MAX
                };
                slowest.fetch_max(took, Ordering::SeqCst);
                peak.fetch_max(rss_of(pid), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    // 1. Endless template loops, one per runtime thread and more.
    let loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let hang = json!([{"id": "hang", "type": "set_variables", "values": {"x": loops}}]);
    for answer in futures::future::join_all((0..4).map(|_| attacker.dry_run(hang.clone()))).await {
        refused_with(&answer, "limit on work");
    }
    // 5. A kilobyte of doubling fragments, three at once.
    let mut bomb = String::from("{ ...F24 } fragment F0 on QueryRoot { __typename }");
    for n in 1..=24 {
        bomb.push_str(&format!(
            " fragment F{n} on QueryRoot {{ ...F{m} ...F{m} }}",
            m = n - 1
        ));
    }
    for answer in futures::future::join_all((0..3).map(|_| attacker.gql(&bomb, json!({})))).await {
        refused_with(&answer, "expands to more than");
    }
    // 6. Eight 100 MB strings; a gigabyte answer; a loop over 100,000 items.
    let big = json!([{"id": "big", "type": "set_variables",
        "values": {"x": "{% for i in range(8) %}{{ 'x' * 100000000 }}{% endfor %}"}}]);
    refused_with(&attacker.dry_run(big).await, "limit on");
    let huge = json!([{"id": "fetch", "type": "http_request", "url": huge_answers().await}]);
    refused_with(&attacker.dry_run(huge).await, "\"status\":\"SUCCEEDED\"");
    let many = json!([{"id": "many", "type": "loop", "items": "range(100000) | list",
        "steps": [{"id": "each", "type": "stop"}]}]);
    refused_with(&attacker.dry_run(many).await, "at most 1000");
    // A template that is a constant of 1.2 GB, saved.
    let constant = ["('x' * 100000000)"; 12].join(" ~ ");
    let saved = attacker
        .gql(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"input": {"name": "Bomb", "definition": {"trigger": {"type": "manual"}, "steps": [
                {"id": "bomb", "type": "set_variables", "values": {"x": format!("{{{{ {constant} }}}}")}}]}}}),
        )
        .await;
    refused_with(&saved, "limit on memory");

    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    let slowest = slowest.load(Ordering::SeqCst);
    let grew = peak.load(Ordering::SeqCst).saturating_sub(start);
    eprintln!(
        "healthz slowest {slowest} ms; RSS {} MB at start, peak +{} MB",
        start >> 20,
        grew >> 20
    );
    assert!(
        slowest < 1000,
        "/healthz took {slowest} ms (u64::MAX: no answer)"
    );
    assert!(grew < 100 << 20, "the server grew by {} MB", grew >> 20);
}
