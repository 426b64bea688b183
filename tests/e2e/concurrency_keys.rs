//! Concurrency keys: the runs of one key go one at a time, in the order they came; a run
//! behind an unfinished run of its key waits without a job and is handed on by the end of the
//! run before; runs of one key inserted together do not wait for each other, only for an end.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use waflow_tests::{Backend, TestApp, spawn_app_without_workers_with};

use crate::flows::{live_flow, run, run_in};

/// Posts `customer`'s request to a flow's hook; answers the new run's id.
pub(crate) async fn call_hook(app: &TestApp, hook: &str, secret: &str, customer: &str) -> String {
    let answer = app
        .http
        .post(hook)
        .header("x-waflow-secret", secret)
        .json(&json!({"customer": customer}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.unwrap();
    body["runId"].as_str().unwrap().to_owned()
}

/// A live flow behind a webhook whose runs are keyed by `trigger.customer`, of one
/// `set_variables` step: its hook's URL and secret.
pub(crate) async fn keyed_flow(app: &TestApp) -> (String, String) {
    let (flow, secret) = live_flow(
        app,
        json!({"trigger": {"type": "webhook"}, "concurrencyKey": "{{ trigger.customer }}",
               "steps": [{"id": "note", "type": "set_variables", "values": {"a": 1}}]}),
    )
    .await;
    (app.url(&format!("/hooks/flows/{flow}")), secret)
}

/// Ready jobs in the flows queue.
async fn ready_flow_jobs(app: &TestApp) -> u64 {
    let stats = app.services.jobs.stats().await.unwrap();
    stats
        .into_iter()
        .find(|q| q.queue == "flows")
        .unwrap()
        .ready
}

async fn runs_with_one_key_go_one_at_a_time(app: TestApp) {
    live_flow(
        &app,
        json!({"trigger": {"type": "event", "name": "order.paid"}, "concurrencyKey": "{{ trigger.customer }}",
            "steps": [{"id": "wait", "type": "delay", "seconds": 2}]}),
    )
    .await;
    let emit = "mutation($p: JSON!) { emitEvent(name: \"order.paid\", payload: $p) }";
    let first = app.ok(emit, json!({"p": {"customer": "ada"}})).await["emitEvent"][0].clone();
    let second = app.ok(emit, json!({"p": {"customer": "ada"}})).await["emitEvent"][0].clone();
    let other = app.ok(emit, json!({"p": {"customer": "bob"}})).await["emitEvent"][0].clone();
    let (first, second, other) = (
        first.as_str().unwrap(),
        second.as_str().unwrap(),
        other.as_str().unwrap(),
    );
    run_in(&app, first, "WAITING").await;
    // Bob's run does not wait for Ada's; Ada's second does.
    run_in(&app, other, "WAITING").await;
    assert_eq!(run(&app, second).await["status"], "QUEUED");
    let first_done = run_in(&app, first, "SUCCEEDED").await;
    let second_done = run_in(&app, second, "SUCCEEDED").await;
    assert!(
        second_done["startedAt"].as_str().unwrap() >= first_done["finishedAt"].as_str().unwrap()
    );
    let none = app
        .ok(
            "mutation { emitEvent(name: \"nobody.listens\", payload: {}) }",
            json!({}),
        )
        .await;
    assert_eq!(none["emitEvent"], json!([]));
}

/// A run behind an unfinished run of its key is given no job, which would only find it
/// blocked: the end of the run before hands it on, in the transaction that ends it.
async fn runs_behind_an_unfinished_run_of_their_key_queue_no_job(backend: Backend) {
    let Some(app) = spawn_app_without_workers_with(backend, |_| {}).await else {
        return;
    };
    let (flow, secret) = live_flow(
        &app,
        json!({"trigger": {"type": "webhook"}, "concurrencyKey": "{{ trigger.customer }}",
               "steps": [{"id": "note", "type": "set_variables", "values": {"who": "{{ trigger.customer }}"}}]}),
    )
    .await;
    let hook = app.url(&format!("/hooks/flows/{flow}"));
    let mut runs = Vec::new();
    for customer in ["ada", "ada", "bob", "ada"] {
        runs.push(call_hook(&app, &hook, &secret, customer).await);
    }
    assert_eq!(
        ready_flow_jobs(&app).await,
        2,
        "a job for Ada's first run and one for Bob's, none for the two runs behind Ada's first"
    );
    // A worker runs them all, Ada's one after the other.
    let _worker = waflow_tests::Worker::start(&app);
    let mut ada = Vec::new();
    for (i, id) in runs.iter().enumerate() {
        let done = run_in(&app, id, "SUCCEEDED").await;
        if i != 2 {
            ada.push(done);
        }
    }
    for pair in ada.windows(2) {
        assert!(
            pair[1]["startedAt"].as_str().unwrap() >= pair[0]["finishedAt"].as_str().unwrap(),
            "{pair:?}"
        );
    }
}

/// A new run checks whether an earlier run of its key is unfinished and holds a lock on the
/// run it found until it is stored. Runs of one key inserted together share that lock: none
/// waits for another (a customer writing fast, or many webhooks for one key, would otherwise
/// insert one commit at a time). But the save that ends the earlier run takes it exclusively,
/// so a run inserted meanwhile waits for that save: it then sees the earlier run finished and
/// gets a job. Without the wait neither would start it: the end could not see the new run, and
/// the new run, seeing an unfinished run before it, would take no job. PostgreSQL only: SQLite
/// has one writer.
#[tokio::test]
async fn runs_of_one_key_are_inserted_together_but_wait_for_an_end() {
    let Some(app) = spawn_app_without_workers_with(Backend::Postgres, |_| {}).await else {
        return;
    };
    let (hook, secret) = keyed_flow(&app).await;
    let db = &app.services.db;

    // Another insert of Ada's key, not yet committed, holds its lock on her first run.
    let ada = call_hook(&app, &hook, &secret, "ada").await;
    let other_insert = db.begin().await.unwrap();
    other_insert
        .execute_unprepared(&format!(
            "SELECT 1 FROM flow_run WHERE id = '{ada}' FOR SHARE"
        ))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        call_hook(&app, &hook, &secret, "ada"),
    )
    .await
    .expect("a run of Ada's key is stored while another insert of her key is in flight");
    other_insert.rollback().await.unwrap();

    // The save that ends Bob's first run, not yet committed.
    let bob = call_hook(&app, &hook, &secret, "bob").await;
    let end = db.begin().await.unwrap();
    end.execute_unprepared(&format!(
        "UPDATE flow_run SET status = 'SUCCEEDED', finished_at = now() WHERE id = '{bob}'"
    ))
    .await
    .unwrap();
    let next = tokio::spawn({
        let (app_url, secret) = (hook.clone(), secret.clone());
        let http = app.http.clone();
        async move {
            http.post(app_url)
                .header("x-waflow-secret", secret)
                .json(&json!({"customer": "bob"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !next.is_finished(),
        "a run inserted while the end of the run before it is being saved waits for that save"
    );
    end.commit().await.unwrap();
    assert_eq!(next.await.unwrap(), 202);
    assert_eq!(
        ready_flow_jobs(&app).await,
        3,
        "jobs for Ada's first run, Bob's first and Bob's second (its predecessor had ended); \
         none for Ada's second, behind her first"
    );
}

waflow_tests::on_both_backends!(runs_behind_an_unfinished_run_of_their_key_queue_no_job);

waflow_tests::on_both_databases!(runs_with_one_key_go_one_at_a_time);
