//! The `waflow` binary as a user runs it: in an empty folder, with nothing but environment
//! variables, talking HTTP.

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{Server, free_port, run, waflow, wait_healthy};

#[test]
fn schema_graphql_is_up_to_date() {
    let output = run(&std::env::temp_dir(), &["schema"], &[]);
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql")).unwrap();
    assert!(
        printed == committed,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql` and commit it"
    );
}

/// The embedded default: an empty folder, no services. `workspace create` prints the key alone
/// on its last line, `serve` creates nothing new, migrates, and accepts that key.
#[tokio::test]
async fn embedded_default_serves_with_no_services() {
    let dir = tempfile::tempdir().unwrap();
    let created = run(dir.path(), &["workspace", "create", "Acme"], &[]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8(created.stdout).unwrap();
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(
        key.starts_with("wf_") && !key.contains(' '),
        "last line must be the key alone: {stdout:?}"
    );
    assert!(dir.path().join("waflow.db").exists());
    assert!(
        dir.path().join("waflow.db.secret-key").exists(),
        "the key for secrets is kept beside the database"
    );

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = waflow(dir.path(), &["serve"], &[("WAFLOW_LISTEN", &listen)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    let base = format!("http://{listen}");
    wait_healthy(&base).await;

    let http = reqwest::Client::new();
    let query = serde_json::json!({"query": "mutation { createSender(input: {phoneNumber: \"+14155551234\", \
        displayName: \"Acme\", provider: SANDBOX}) { phoneNumber status } }"});
    let answer: serde_json::Value = http
        .post(format!("{base}/graphql"))
        .bearer_auth(&key)
        .json(&query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["data"]["createSender"],
        serde_json::json!({"phoneNumber": "+14155551234", "status": "ONLINE"})
    );
    let refused = http
        .post(format!("{base}/graphql"))
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[test]
fn impossible_configurations_fail_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[(&str, &str)], &str); 11] = [
        (
            &[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")],
            "needs REDIS_URL",
        ),
        (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL is invalid"),
        (
            &[("WAFLOW_LISTEN", "localhost")],
            "WAFLOW_LISTEN is invalid",
        ),
        (
            &[("WAFLOW_SECRET_KEY", "short")],
            "WAFLOW_SECRET_KEY must be 32 random bytes",
        ),
        (
            &[("WAFLOW_INBOUND_MAX_AGE_HOURS", "a week")],
            "WAFLOW_INBOUND_MAX_AGE_HOURS is invalid",
        ),
        (
            &[("WAFLOW_ALLOW_PRIVATE_NETWORKS", "yes please")],
            "WAFLOW_ALLOW_PRIVATE_NETWORKS is invalid",
        ),
        (
            &[("WAFLOW_RUN_RETENTION_DAYS", "a month")],
            "WAFLOW_RUN_RETENTION_DAYS is invalid",
        ),
        (
            &[("WAFLOW_RUN_RETENTION_DAYS", "0")],
            "WAFLOW_RUN_RETENTION_DAYS is invalid",
        ),
        (
            &[("WAFLOW_EVALUATION_TIMEOUT_SECONDS", "soon")],
            "WAFLOW_EVALUATION_TIMEOUT_SECONDS is invalid",
        ),
        (
            &[("WAFLOW_MAX_RUN_BACKLOG_SECONDS", "a minute")],
            "WAFLOW_MAX_RUN_BACKLOG_SECONDS is invalid",
        ),
        (
            &[("WAFLOW_LOG_FORMAT", "xml")],
            "WAFLOW_LOG_FORMAT is invalid",
        ),
    ];
    for (env, expected) in cases {
        let output = run(dir.path(), &["serve"], env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?} should fail");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
    let output = run(
        dir.path(),
        &["workspace", "create", "Acme"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("WAFLOW_SECRET_KEY is required"));
}

/// A lost key is replaced from the command line (issue 18): `workspace list` finds the
/// workspace, `api-key create` makes a key for it by name or id, and the server accepts it.
#[tokio::test]
async fn lost_keys_are_replaced_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(dir.path(), &["workspace", "create", "Acme"], &[])
            .status
            .success()
    );
    assert!(
        run(dir.path(), &["workspace", "create", "Zeta"], &[])
            .status
            .success()
    );
    let listed = run(dir.path(), &["workspace", "list"], &[]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].contains("  Acme  created "), "{listed}");
    let acme_id = lines[0].split_whitespace().next().unwrap().to_owned();

    let mut keys = Vec::new();
    for workspace in ["Acme", acme_id.as_str()] {
        let created = run(
            dir.path(),
            &["api-key", "create", workspace, "--name", "ops"],
            &[],
        );
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let stdout = String::from_utf8(created.stdout).unwrap();
        assert!(stdout.contains(&acme_id), "{stdout}");
        keys.push(stdout.lines().last().unwrap().to_owned());
    }
    let missing = run(dir.path(), &["api-key", "create", "Nobody"], &[]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("workspace not found"));
    // Two workspaces of one name: the name is not enough, and the error gives both ids.
    assert!(
        run(dir.path(), &["workspace", "create", "Zeta"], &[])
            .status
            .success()
    );
    let ambiguous = run(dir.path(), &["api-key", "create", "Zeta"], &[]);
    assert!(!ambiguous.status.success());
    let stderr = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(
        stderr.contains("2 workspaces are named \"Zeta\"; give an id"),
        "{stderr}"
    );
    let listed = String::from_utf8(run(dir.path(), &["workspace", "list"], &[]).stdout).unwrap();
    for line in listed.lines().filter(|l| l.contains("  Zeta  ")) {
        let id = line.split_whitespace().next().unwrap();
        assert!(stderr.contains(id), "{stderr}");
    }

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = waflow(dir.path(), &["serve"], &[("WAFLOW_LISTEN", &listen)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    let base = format!("http://{listen}");
    wait_healthy(&base).await;
    for key in keys {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{base}/graphql"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"query": "{ workspace { name } }"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["data"]["workspace"]["name"], "Acme", "{answer}");
    }
}

#[test]
fn workspace_names_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["workspace", "create", "  "], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("name: must not be empty"));
}

/// `WAFLOW_LOG_FORMAT=json`: every log line is one JSON object a collector can parse.
#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["migrate"], &[("WAFLOW_LOG_FORMAT", "json")]);
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty(), "migrate logs what it applies");
    for line in lines {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            entry["timestamp"].is_string() && entry["level"].is_string(),
            "{entry}"
        );
        assert!(entry["fields"]["message"].is_string(), "{entry}");
    }
}

/// SIGTERM: open subscriptions get a close frame (1001, so clients reconnect elsewhere), the
/// process finishes what it was doing and exits 0.
#[tokio::test]
async fn sigterm_closes_subscriptions_and_exits_cleanly() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let created = run(dir.path(), &["workspace", "create", "Acme"], &[]);
    let key = String::from_utf8(created.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let listen = format!("127.0.0.1:{}", free_port());
    let child = waflow(dir.path(), &["serve"], &[("WAFLOW_LISTEN", &listen)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    wait_healthy(&format!("http://{listen}")).await;

    let mut socket = common::subscribe(
        &format!("http://{listen}"),
        &key,
        "subscription { messageReceived { message } }",
    )
    .await;

    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("a close frame soon after SIGTERM");
    assert_eq!(closed, Some(1001));

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "waflow serve did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

/// Every log line of a request carries its id (the caller's `X-Request-Id`, or a new one the
/// response returns), so one request can be followed through JSON logs.
#[tokio::test]
async fn request_ids_reach_the_logs_and_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let listen = format!("127.0.0.1:{}", free_port());
    let child = waflow(
        dir.path(),
        &["serve"],
        &[
            ("WAFLOW_LISTEN", &listen),
            ("WAFLOW_LOG_FORMAT", "json"),
            ("RUST_LOG", "info,waflow_api=debug"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log_path).unwrap())
    .spawn()
    .unwrap();
    let server = Server(child);
    let base = format!("http://{listen}");
    wait_healthy(&base).await;

    let http = reqwest::Client::new();
    let given = http
        .get(format!("{base}/readyz"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "req-42");
    let made = http.get(format!("{base}/readyz")).send().await.unwrap();
    let made_id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made_id.len(), 36, "a UUID: {made_id}");
    drop(server);

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let served: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "request served")
        .collect();
    for id in ["req-42", made_id.as_str()] {
        let entry = served
            .iter()
            .find(|e| e["span"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no log line of request {id} in:\n{logs}"));
        assert_eq!(entry["span"]["route"], "/readyz");
        assert_eq!(entry["fields"]["status"], 200);
    }
}
