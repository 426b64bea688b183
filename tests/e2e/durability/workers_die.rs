//! Workers die (their runtime stopped where it stands, as a killed process would) during a
//! delay and in the middle of a send, and the run still completes on a new worker, with
//! exactly one message per send step at Meta's stand-in.

use std::time::Duration;

use serde_json::json;
use waflow_tests::{Backend, Meta, eventually, spawn_app_without_workers};
use wiremock::{
    Mock,
    matchers::{body_string_contains, method, path},
};

use super::{ANA, Accepts, PN, delay, manual_flow, on_both, send, sends_of, until_status, worker};
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

on_both!(a_run_survives_its_workers);
