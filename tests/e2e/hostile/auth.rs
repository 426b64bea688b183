//! Guessing keys: the 3,000 wrong keys all got 401 at 1,169/s. After 20 failures in a
//! minute an address gets 429 with Retry-After (answered without a database query), while a
//! key that worked from there keeps working.

use serde_json::json;
use waflow_tests::{Backend, spawn_app};

#[tokio::test]
async fn failed_keys_are_throttled_per_address() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    // The workspace's own key has worked from this address.
    app.ok("{ workspace { name } }", json!({})).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for n in 0..300 {
        let response = app
            .http
            .post(app.url("/graphql"))
            .bearer_auth(format!("wf_guess{n}"))
            .json(&json!({"query": "{ workspace { name } }"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 && retry_after.is_none() {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 280);
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    // The key that worked still works, over HTTP and WebSocket.
    app.ok("{ workspace { name } }", json!({})).await;
    assert!(app.subscriber(&app.key).await.is_ok());
    // A wrong key on a WebSocket is told to wait too.
    let refused = app.subscriber("wf_guess-ws").await.err().map(|c| c.code);
    assert_eq!(refused, Some(4429));
}
