//! A graphql-transport-ws client, as the `graphql-ws` library speaks it: connect to
//! `/graphql/ws`, authenticate in `connection_init`, subscribe, and read events; plus opening
//! thousands of them with bounded concurrency.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::Result;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The subscription every bench subscriber runs: the text carries the sequence number.
pub fn message_received(sender_id: Option<&str>) -> String {
    match sender_id {
        Some(id) => format!("subscription {{ messageReceived(senderId: \"{id}\") {{ message }} }}"),
        None => "subscription { messageReceived { message } }".to_owned(),
    }
}

/// Connects, authenticates and subscribes; returns once a ping after the subscribe is
/// answered, so the subscription is registered.
pub async fn open(base: &str, key: &str, query: &str) -> Result<Socket> {
    let url = format!("{}/graphql/ws", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init =
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {key}")}});
    socket.send(Message::Text(init.to_string().into())).await?;
    match socket.next().await {
        Some(Ok(Message::Text(ack))) if ack.contains("connection_ack") => {}
        other => return Err(format!("expected connection_ack, got {other:?}").into()),
    }
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query}});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    socket
        .send(Message::Text(json!({"type": "ping"}).to_string().into()))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.contains("pong") => return Ok(socket),
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("subscription not confirmed: {other:?}").into()),
        }
    }
    Err("subscription not confirmed in 30 s".into())
}

/// Opens `count` subscriptions, subscriber `i` on the base and with the query `target(i)`
/// gives, at most `parallel` handshakes at a time.
pub async fn open_many(
    key: &str,
    count: usize,
    parallel: usize,
    target: impl Fn(usize) -> (String, String),
) -> Result<Vec<Socket>> {
    let gate = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let (base, query) = target(i);
        let key = key.to_owned();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            open(&base, &key, &query).await
        }));
    }
    let mut sockets = Vec::with_capacity(count);
    for task in tasks {
        sockets.push(task.await??);
    }
    Ok(sockets)
}

/// What a subscriber saw: an event's sequence number and when it arrived, or an error frame.
pub enum Seen {
    Event {
        subscriber: u32,
        seq: u64,
        at: Instant,
    },
    Error {
        subscriber: u32,
        text: String,
    },
}

/// Reads `socket` until it closes, reporting each event's sequence number (`seq N` in the
/// message text) and each error or complete frame to `tx`.
pub async fn listen(subscriber: u32, mut socket: Socket, tx: mpsc::UnboundedSender<Seen>) {
    while let Some(Ok(frame)) = socket.next().await {
        let Message::Text(text) = frame else {
            continue;
        };
        let at = Instant::now();
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let seen = match value["type"].as_str() {
            Some("next") => {
                let message = value["payload"]["data"]["messageReceived"]["message"]
                    .as_str()
                    .unwrap_or_default();
                match seq_of(message) {
                    Some(seq) => Seen::Event {
                        subscriber,
                        seq,
                        at,
                    },
                    None => continue,
                }
            }
            Some("error") | Some("complete") => Seen::Error {
                subscriber,
                text: text.to_string(),
            },
            _ => continue,
        };
        if tx.send(seen).is_err() {
            return;
        }
    }
}

/// `seq 42 …` → 42.
pub fn seq_of(message: &str) -> Option<u64> {
    message
        .strip_prefix("seq ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}
