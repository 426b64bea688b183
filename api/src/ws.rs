//! `/graphql/ws`: GraphQL subscriptions over WebSocket (graphql-transport-ws, the protocol of
//! the `graphql-ws` library, and the older subscriptions-transport-ws).
//!
//! Browsers cannot set headers on a WebSocket, so the API key comes in `connection_init`'s
//! payload (`{"authorization": "Bearer KEY"}`). The key is checked here, before the protocol
//! engine sees the connection: a refused key closes the socket with 4403 (Forbidden), which
//! `graphql-ws` clients take as final instead of reconnecting in a loop.

use async_graphql::{
    Data,
    http::{WebSocketProtocols, WsMessage},
};
use axum::{
    extract::{
        ConnectInfo, State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, header},
    response::Response,
};
use futures::{SinkExt, StreamExt};

use crate::state::AppState;

/// How long a client may take to send `connection_init`.
const INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Each connection's read buffer. tungstenite allocates and zero-fills it whole (128 KiB by
/// default), which made every open subscription cost ~150 KB of RSS (`bench memory`); clients
/// send small frames, and the buffer still grows for a larger one.
const READ_BUFFER_SIZE: usize = 1024;

pub async fn graphql_ws(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The first sub-protocol the client offers that we speak; graphql-transport-ws when none.
    let protocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        })
        .unwrap_or(WebSocketProtocols::GraphQLWS);
    upgrade
        .read_buffer_size(READ_BUFFER_SIZE)
        // A message is a GraphQL request: the same limit as an HTTP body.
        .max_message_size(crate::limits::MAX_BODY_BYTES)
        .max_frame_size(crate::limits::MAX_BODY_BYTES)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(state, peer.ip(), socket, protocol))
}

async fn serve(
    state: AppState,
    peer: std::net::IpAddr,
    socket: WebSocket,
    protocol: WebSocketProtocols,
) {
    let _open = state.shutdown.hold().await;
    let (mut sink, mut source) = socket.split();
    let first = match tokio::time::timeout(INIT_TIMEOUT, source.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => text.to_string(),
        _ => {
            let _ = sink
                .send(close(4408, "connection initialisation timeout"))
                .await;
            return;
        }
    };
    let init: serde_json::Value = serde_json::from_str(&first).unwrap_or_default();
    if init["type"] != "connection_init" {
        let _ = sink.send(close(4400, "expected connection_init")).await;
        return;
    }
    let payload = &init["payload"];
    let bearer = ["authorization", "Authorization"]
        .iter()
        .find_map(|k| payload[*k].as_str())
        .map(|v| crate::auth::strip_bearer(v).unwrap_or(v).to_owned());
    let authenticated = state
        .auth
        .authenticate(&state.services, peer, bearer.as_deref())
        .await;
    let principal = match authenticated {
        Ok(principal) => principal,
        // Too many failed attempts from this address: 4429, which clients may retry later.
        Err(refusal) if refusal.status == axum::http::StatusCode::TOO_MANY_REQUESTS => {
            let _ = sink.send(close(4429, &refusal.message)).await;
            return;
        }
        Err(_) => {
            let _ = sink.send(close(4403, "Forbidden")).await;
            return;
        }
    };

    // Replay connection_init into the protocol engine, which acknowledges it.
    let input = Box::pin(
        futures::stream::once(async move { first.into_bytes() }).chain(source.filter_map(
            |message| async move {
                match message {
                    Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
                    Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                    _ => None,
                }
            },
        )),
    );
    let mut output = Box::pin(
        async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
            .on_connection_init(move |_| async move {
                let mut data = Data::default();
                data.insert(principal);
                Ok(data)
            }),
    );
    let stopped = state.shutdown.stopped();
    tokio::pin!(stopped);
    let mut revoked = state.keys.watch(&state.services, principal.api_key_id);
    let mut watching = true;
    loop {
        let message = tokio::select! {
            message = output.next() => message,
            () = &mut stopped => {
                let _ = sink.send(close(1001, "the server is shutting down; reconnect")).await;
                break;
            }
            changed = revoked.changed(), if watching => {
                watching = changed.is_ok();
                if watching && *revoked.borrow_and_update() {
                    // Final for graphql-ws clients: no reconnecting with a dead key.
                    let _ = sink.send(close(4403, "Forbidden: the API key was revoked")).await;
                    break;
                }
                continue;
            }
        };
        let Some(message) = message else { break };
        let message = match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            // async-graphql answers an unreadable message with 1002; graphql-transport-ws names
            // it 4400 (Invalid message), which graphql-ws clients take as final.
            WsMessage::Close(1002, reason) if protocol == WebSocketProtocols::GraphQLWS => {
                close(4400, &reason)
            }
            WsMessage::Close(code, reason) => close(code, &reason),
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
}

/// A close frame's reason is at most 123 bytes (RFC 6455); a longer one (serde's list of
/// expected message types, say) would make the frame invalid and the client see a broken
/// connection instead of the code.
const MAX_CLOSE_REASON: usize = 123;

fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }))
}
