//! Durable execution: runs survive their workers dying anywhere (`workers_die`, `crash_points`),
//! and the reconciler wakes runs whose jobs were lost (`reconciler`). The helpers here set up a
//! Cloud API sender at Meta's stand-in and count what reached it.

mod crash_points;
mod reconciler;
mod workers_die;

use std::time::Duration;

use sea_orm::EntityTrait;
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::flow_run;
use waflow_jobs::{
    crash_points::CrashPoints,
    flows::{FlowJob, state::RunState},
};
use waflow_tests::{APP_SECRET, Meta, TestApp, Worker, eventually, messages_webhook};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::flows::run;

pub const PN: &str = "PN-DURABLE";
pub const ANA: &str = "+14155550123";
pub const BEN: &str = "+14155550124";
/// Short, so that a dead worker's runs are free again soon.
pub const LEASE: Duration = Duration::from_secs(2);

/// Meta accepting a send with a fresh message id, after `.0`.
pub struct Accepts(pub Duration);

impl wiremock::Respond for Accepts {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(json!({
                "messaging_product": "whatsapp", "contacts": [{"input": "14155550123", "wa_id": "14155550123"}],
                "messages": [{"id": format!("wamid.DURABLE-{}", Uuid::now_v7().simple())}]}))
            .set_delay(self.0)
    }
}

/// The texts of the sends that reached Meta, in order.
pub async fn texts(meta: &Meta) -> Vec<String> {
    meta.requests("POST", &format!("/{PN}/messages"))
        .await
        .iter()
        .filter_map(|r| {
            let body = serde_json::from_slice::<Value>(&r.body).unwrap();
            body["text"]["body"].as_str().map(str::to_owned)
        })
        .collect()
}

/// How many sends of `text` reached Meta.
pub async fn sends_of(meta: &Meta, text: &str) -> usize {
    texts(meta).await.iter().filter(|t| *t == text).count()
}

/// A worker as these tests want it: short leases, no reconciler, and `points` armed.
pub fn worker(app: &TestApp, points: Option<CrashPoints>) -> Worker {
    Worker::start_with(app, move |services| {
        services.runs.lease = LEASE;
        services.runs.reconcile_grace = Duration::from_secs(24 * 3600);
        if let Some(points) = points {
            services.crash_points = points;
        }
    })
}

/// A Cloud API sender at Meta's stand-in (which accepts every send at once unless a test mounts
/// more), with Ana and Ben having written so that their 24-hour windows are open. The worker
/// that did the setup is gone when this returns.
pub async fn setup(app: &TestApp, meta: &Meta) -> String {
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .respond_with(Accepts(Duration::ZERO))
        .with_priority(5)
        .mount(&meta.server)
        .await;
    let setup = worker(app, None);
    let sender = app.cloud_sender(meta, "+14155550199", PN).await;
    for (phone, id) in [(ANA, "wamid.IN-ANA"), (BEN, "wamid.IN-BEN")] {
        customer_writes(app, phone, id, "hello").await;
    }
    setup.kill();
    sender
}

/// `phone` writes `text` to the sender, through Meta's webhook.
pub async fn customer_writes(app: &TestApp, phone: &str, id: &str, text: &str) {
    let wa_id = phone.trim_start_matches('+');
    let inbound = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Customer"}, "wa_id": wa_id}],
               "messages": [{"from": wa_id, "id": id, "timestamp": chrono::Utc::now().timestamp().to_string(),
                             "type": "text", "text": {"body": text}}]}),
    );
    assert_eq!(app.webhook(&inbound, Some(APP_SECRET)).await, 200);
}

/// A manual flow of `steps`, live; its id.
pub async fn manual_flow(app: &TestApp, steps: Value) -> String {
    crate::flows::live_flow(app, json!({"trigger": {"type": "manual"}, "steps": steps}))
        .await
        .0
}

pub fn send(sender: &str, to: &str, text: &str) -> Value {
    json!({"id": "tell", "type": "send_text", "senderId": sender, "to": to, "text": text})
}

pub fn delay(seconds: u64) -> Value {
    json!({"id": "pause", "type": "delay", "seconds": seconds})
}

pub async fn status(app: &TestApp, run_id: &str) -> String {
    run(app, run_id).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn until_status(app: &TestApp, run_id: &str, wanted: &str) {
    eventually(&format!("run {run_id} to be {wanted}"), || async {
        (status(app, run_id).await == wanted).then_some(())
    })
    .await;
}

/// Waits until every run succeeded; panics naming the ones that did not.
pub async fn all_succeed(app: &TestApp, runs: &[(&str, String)], within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut open = Vec::new();
        for (what, id) in runs {
            let r = run(app, id).await;
            match r["status"].as_str().unwrap() {
                "SUCCEEDED" => {}
                "FAILED" | "CANCELLED" => panic!("the {what} run ended {}: {r}", r["status"]),
                other => open.push(format!("{what} ({other}): {r}")),
            }
        }
        if open.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            let mut rows = Vec::new();
            for (_, id) in runs {
                let row = flow_run::Entity::find_by_id(uuid(id))
                    .one(&app.services.db)
                    .await
                    .unwrap();
                rows.push(format!("{row:?}"));
            }
            panic!(
                "runs left unfinished: {}\nrows: {}\nflow queue:\n{}",
                open.join(", "),
                rows.join("\n"),
                app.flow_queue_snapshot().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn uuid(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap()
}

/// The token of the parked run's wake-up, from its row.
pub async fn wake_token(app: &TestApp, run_id: &str) -> Uuid {
    let row = flow_run::Entity::find_by_id(uuid(run_id))
        .one(&app.services.db)
        .await
        .unwrap()
        .unwrap();
    let state: RunState = serde_json::from_value(row.state).unwrap();
    state.wake.expect("a parked run has a wake-up").token
}

/// Queues a job for the run, as a duplicate delivery (or, with its wake-up's token, an early
/// one) would.
pub async fn poke(app: &TestApp, run_id: &str, token: Option<Uuid>) {
    let job = FlowJob::Run {
        run_id: uuid(run_id),
        token,
    };
    app.services.jobs.flows.push(job, None).await.unwrap();
}

/// Defines, for each `async fn(Backend)`, a test on SQLite and one on PostgreSQL and Redis, on a
/// runtime of two threads (the workers the tests start have their own).
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(waflow_tests::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(waflow_tests::Backend::Postgres).await;
                }
            }
        )+
    };
}
pub(crate) use on_both;
