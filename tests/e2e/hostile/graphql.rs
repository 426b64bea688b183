//! Documents that cost more than they look: the 1 KB of doubling fragments (3 GB and
//! 21 s before) is refused at once, over HTTP and WebSocket; a WebSocket message is held to
//! the HTTP body limit; and errors on a WebSocket carry a code like those over HTTP.

use std::time::{Duration, Instant};

use serde_json::json;
use waflow_tests::{Backend, TestApp, error_code, spawn_app};

use super::Watch;

/// `{ ...F24 }`, each fragment spreading the one before twice: 2^24 fields once expanded.
fn doubling_fragments() -> String {
    let mut query = String::from("{ ...F24 } fragment F0 on QueryRoot { __typename }");
    for n in 1..=24 {
        query.push_str(&format!(
            " fragment F{n} on QueryRoot {{ ...F{m} ...F{m} }}",
            m = n - 1
        ));
    }
    query
}

async fn app() -> TestApp {
    spawn_app(Backend::Sqlite).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_expands_without_bound_is_refused_at_once() {
    let app = app().await;
    let watch = Watch::start(&app);
    let query = doubling_fragments();
    assert!(query.len() < 2048);
    let started = Instant::now();
    let answers = futures::future::join_all((0..3).map(|_| app.gql(&query, json!({})))).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for answer in answers {
        assert_eq!(error_code(&answer), Some("VALIDATION_FAILED"), "{answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("expands to more than 5000 fields"),
            "{message}"
        );
    }
    // The same over a WebSocket.
    let mut socket = app.subscriber(&app.key).await.unwrap();
    socket
        .send_raw(&json!({"id": "1", "type": "subscribe", "payload": {"query": query}}).to_string())
        .await;
    let error = socket.next_message().await.unwrap();
    assert_eq!(ws_error_code(&error), Some("VALIDATION_FAILED"), "{error}");
    watch.held_up("a document of doubling fragments").await;
}

#[tokio::test]
async fn websocket_errors_carry_a_code() {
    let app = app().await;
    let mut socket = app.subscriber(&app.key).await.unwrap();
    socket
        .send_raw(
            &json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { noSuchEvent }"}})
                .to_string(),
        )
        .await;
    let error = socket.next_message().await.unwrap();
    assert_eq!(ws_error_code(&error), Some("VALIDATION_FAILED"), "{error}");
}

/// The code of an operation's error over graphql-transport-ws: in an `error` message, or in a
/// `next` whose result has errors (how async-graphql reports a document it refused).
fn ws_error_code(message: &serde_json::Value) -> Option<&str> {
    match message["type"].as_str()? {
        "error" => message["payload"][0]["extensions"]["code"].as_str(),
        "next" => message["payload"]["errors"][0]["extensions"]["code"].as_str(),
        _ => None,
    }
}

/// The 10 MB message: HTTP refuses bodies over 1 MiB, and so does the WebSocket.
#[tokio::test]
async fn a_websocket_message_is_held_to_the_body_limit() {
    let app = app().await;
    let mut socket = app.subscriber(&app.key).await.unwrap();
    let padding = "x".repeat(10 << 20);
    let huge = json!({"id": "1", "type": "subscribe",
        "payload": {"query": format!("subscription {{ messageReceived {{ message }} }} # {padding}")}});
    // The server stops reading at the limit, so the send itself may fail.
    let _ = socket.try_send_raw(&huge.to_string()).await;
    assert!(
        socket.ended(Duration::from_secs(5)).await,
        "a 10 MB message was taken"
    );
}
