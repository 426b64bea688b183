//! Durability: workers die (their runtime stopped where it stands, as a killed process would)
//! during a delay and in the middle of a send, and the run still completes on a new worker, with
//! exactly one message per send step at Meta's stand-in.

use std::time::Duration;

use serde_json::{Value, json};
use waflow_tests::{
    APP_SECRET, Backend, Meta, TestApp, Worker, eventually, messages_webhook,
    spawn_app_without_workers,
};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{body_string_contains, method, path},
};

use crate::flows::{live_flow, run, run_flow};

const PN: &str = "PN-CRASH";

/// Meta accepting a send, with a fresh message id each time; after `delay`.
struct Accepts(Duration);

impl wiremock::Respond for Accepts {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(json!({
                "messaging_product": "whatsapp", "contacts": [{"input": "14155550123", "wa_id": "14155550123"}],
                "messages": [{"id": format!("wamid.CRASH-{}", uuid::Uuid::now_v7().simple())}]}))
            .set_delay(self.0)
    }
}

async fn sends_of(meta: &Meta, text: &str) -> usize {
    meta.requests("POST", &format!("/{PN}/messages"))
        .await
        .iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["text"]["body"] == text)
        .count()
}

async fn status(app: &TestApp, run_id: &str) -> String {
    run(app, run_id).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

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
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .respond_with(Accepts(Duration::ZERO))
        .with_priority(2)
        .mount(&meta.server)
        .await;
    let first_worker = Worker::start(&app);
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    let inbound = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "14155550123"}],
               "messages": [{"from": "14155550123", "id": "wamid.IN-CRASH", "timestamp": chrono::Utc::now().timestamp().to_string(),
                             "type": "text", "text": {"body": "hi"}}]}),
    );
    assert_eq!(app.webhook(&inbound, Some(APP_SECRET)).await, 200);
    let send = |id: &str, text: &str| json!({"id": id, "type": "send_text", "senderId": sender, "to": "+14155550123", "text": text});
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            send("one", "one"),
            {"id": "pause", "type": "delay", "seconds": 3},
            send("two", "two"),
            send("three", "three")]}),
    )
    .await;
    let run_id = run_flow(&app, &flow, json!({})).await;

    // Killed during the delay.
    eventually("the run to wait in its delay", || async {
        (status(&app, &run_id).await == "WAITING").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first_worker.kill();
    let second_worker = Worker::start(&app);

    // Killed while Meta is answering "two".
    eventually("the second send to reach Meta", || async {
        (sends_of(&meta, "two").await == 1).then_some(())
    })
    .await;
    second_worker.kill();
    let _third_worker = Worker::start(&app);

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

mod a_run_survives_its_workers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_run_survives_its_workers(waflow_tests::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_run_survives_its_workers(waflow_tests::Backend::Postgres).await;
    }
}
