//! Workers die (their runtime stopped where it stands, as a killed process would) during a
//! delay and in the middle of a send, and the run still completes on a new worker, with
//! exactly one message per send step at Meta's stand-in. A send whose answer is lost (the
//! connection breaks after the request went out) is the same doubt seen from a live worker:
//! taken as sent, never made again.

use std::time::Duration;

use serde_json::json;
use waflow_tests::{Backend, Meta, SilentServer, eventually, spawn_app_without_workers};
use wiremock::{
    Mock,
    matchers::{body_string_contains, method, path},
};

use super::{
    ANA, Accepts, PN, all_succeed, delay, manual_flow, on_both, send, sends_of, until_status,
    worker,
};
use crate::flows::{run, run_flow};

async fn a_run_survives_its_workers(backend: Backend) {
    let Some(app) = spawn_app_without_workers(backend).await else {
        return;
    };
    let meta = Meta::start().await;
    // Meta takes its time with "two": long enough to kill the worker waiting for the answer.
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .and(body_string_contains("\"body\":\"two\""))
        .respond_with(Accepts(Duration::from_secs(4)))
        .with_priority(1)
        .mount(&meta.server)
        .await;
    let sender = super::setup(&app, &meta).await;
    let first_worker = worker(&app, None);
    let flow = manual_flow(
        &app,
        json!([
            {"id": "one", "type": "send_text", "senderId": sender, "to": ANA, "text": "one"},
            delay(3),
            {"id": "two", "type": "send_text", "senderId": sender, "to": ANA, "text": "two"},
            send(&sender, ANA, "three")]),
    )
    .await;
    let run_id = run_flow(&app, &flow, json!({})).await;

    // Killed during the delay.
    until_status(&app, &run_id, "WAITING").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first_worker.kill();
    let second_worker = worker(&app, None);

    // Killed while Meta is answering "two".
    eventually("the second send to reach Meta", || async {
        (sends_of(&meta, "two").await == 1).then_some(())
    })
    .await;
    second_worker.kill();
    let _third_worker = worker(&app, None);

    let done = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let r = run(&app, &run_id).await;
            if r["status"] != "WAITING" && r["status"] != "RUNNING" && r["status"] != "QUEUED" {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("the run to finish after its workers died");
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    for text in ["one", "two", "three"] {
        assert_eq!(
            sends_of(&meta, text).await,
            1,
            "exactly one {text:?} reached Meta"
        );
    }
}

/// Meta's answer never comes (the connection drops once the request is out); the step allows
/// three attempts a second apart. One request leaves, and the run goes on as if it was sent.
async fn a_send_without_an_answer_is_not_retried(backend: Backend) {
    let Some(app) = spawn_app_without_workers(backend).await else {
        return;
    };
    let meta = Meta::start().await;
    let sender = super::setup(&app, &meta).await;
    let silent = SilentServer::start().await;
    app.move_sender_api(&sender, &format!("{}/v21.0", silent.base_url))
        .await;
    let mut step = send(&sender, ANA, "unanswered");
    step["retry"] = json!({"maxAttempts": 3, "backoffSeconds": 1});
    let flow = manual_flow(&app, json!([step])).await;
    let _worker = worker(&app, None);
    let run_id = run_flow(&app, &flow, json!({})).await;
    all_succeed(
        &app,
        &[("unanswered", run_id.clone())],
        Duration::from_secs(30),
    )
    .await;
    // Past every backoff the step could have waited.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(silent.heard().len(), 1, "{:?}", silent.heard());
    let steps = &run(&app, &run_id).await["steps"];
    assert_eq!(steps.as_array().unwrap().len(), 1, "{steps}");
    assert_eq!(steps[0]["output"]["status"], "QUEUED", "{steps}");
    assert_eq!(
        steps[0]["output"]["provider_message_id"],
        serde_json::Value::Null
    );
}

on_both!(
    a_run_survives_its_workers,
    a_send_without_an_answer_is_not_retried
);
