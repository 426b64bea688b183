//! A GraphQL subscription client over `/graphql/ws`, speaking graphql-transport-ws as the
//! `graphql-ws` library does, and able to send what that library never would.

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};

use crate::TestApp;

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
