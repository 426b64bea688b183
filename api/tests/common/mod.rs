//! What the tests of the `waflow` binary share: running it as a user would (an empty folder,
//! only the environment given), free ports, and waiting for health.

#![allow(dead_code)]

pub mod cluster;
pub mod proxy;
pub mod redis_server;

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Output},
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_waflow");

/// `waflow` in `dir` with a clean environment: only what a user would have set.
pub fn waflow(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    waflow(dir, args, env).output().expect("run waflow")
}

/// `waflow workspace create Acme` in `dir`; the API key it prints on its last line.
pub fn create_workspace(dir: &Path, env: &[(&str, &str)]) -> String {
    let created = run(dir, &["workspace", "create", "Acme"], env);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8(created.stdout).unwrap();
    stdout.lines().last().unwrap().to_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waflow serve did not become healthy at {base}");
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws connection to `base` with `key`, subscribed to `query` (and the
/// subscription registered: a ping is answered after it).
pub async fn subscribe(base: &str, key: &str, query: &str) -> Socket {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let url = format!("{}/graphql/ws", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = serde_json::json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {key}")}});
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    match socket.next().await {
        Some(Ok(Message::Text(ack))) => assert!(ack.contains("connection_ack"), "{ack}"),
        other => panic!("expected connection_ack, got {other:?}"),
    }
    let subscribe =
        serde_json::json!({"id": "1", "type": "subscribe", "payload": {"query": query}});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    // Round-trip a ping so the subscription is registered before anything happens.
    socket
        .send(Message::Text(
            serde_json::json!({"type": "ping"}).to_string().into(),
        ))
        .await
        .unwrap();
    loop {
        if let Some(Ok(Message::Text(text))) = socket.next().await
            && text.contains("pong")
        {
            return socket;
        }
    }
}

/// The next `next` message's data; panics when none comes within `within`.
pub async fn next_data(socket: &mut Socket, within: Duration) -> serde_json::Value {
    try_next_data(socket, within)
        .await
        .expect("an event in time")
}

/// The next `next` message's data, or `None` when none comes within `within`.
pub async fn try_next_data(socket: &mut Socket, within: Duration) -> Option<serde_json::Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(within, async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Text(text)) = message {
                let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                if message["type"] == "next" {
                    return message["payload"]["data"].clone();
                }
            }
        }
        panic!("the subscription ended");
    })
    .await
    .ok()
}
