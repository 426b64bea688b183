//! The reconciler: runs whose jobs were all lost (the queue emptied under them) are found, each
//! kind of them, and finish; runs that wait rightly (for their time, for an earlier run of their
//! key, for a worker that holds them) are left alone; a run woken twice sends once; and the
//! workers run the reconciler by themselves.

use std::{collections::BTreeSet, time::Duration};

use serde_json::json;
use waflow_jobs::crash_points::{CrashPoint, CrashPoints};
use waflow_tests::{Backend, Meta, Worker, eventually, spawn_app_without_workers};
use wiremock::{
    Mock,
    matchers::{body_string_contains, method, path},
};

use super::{
    ANA, Accepts, LEASE, PN, all_succeed, delay, manual_flow, on_both, poke, send, sends_of, setup,
    until_status, uuid, wake_token, worker,
};
use crate::{
    flows::{live_flow, run, run_flow},
    operations::metric,
};

/// A queued run never started, a parked run past its time and a running run whose worker died,
/// each with no job left in the queue: one reconciler pass finds exactly these three, and they
/// finish, each message sent once.
async fn lost_runs_of_every_kind_are_found(backend: Backend) {
    let Some(mut app) = spawn_app_without_workers(backend).await else {
        return;
    };
    app.services.runs.reconcile_grace = Duration::ZERO;
    let meta = Meta::start().await;
    let sender = setup(&app, &meta).await;
    let waiting = manual_flow(&app, json!([delay(1), send(&sender, ANA, "was waiting")])).await;
    let waiting = run_flow(&app, &waiting, json!({})).await;
    let running = manual_flow(&app, json!([delay(1), send(&sender, ANA, "was running")])).await;
    let running = run_flow(&app, &running, json!({})).await;
    // The worker parks one run and dies inside the other, between its steps.
    let (points, mut reached) = CrashPoints::new();
    points.arm(CrashPoint::WakeQueued, uuid(&running));
    let doomed = worker(&app, Some(points));
    until_status(&app, &waiting, "WAITING").await;
    tokio::time::timeout(Duration::from_secs(30), reached.wait_for(|n| *n == 1))
        .await
        .expect("the crash point to be reached")
        .unwrap();
    doomed.kill();
    let queued = manual_flow(&app, json!([send(&sender, ANA, "was queued")])).await;
    let queued = run_flow(&app, &queued, json!({})).await;
    app.lose_flow_jobs().await;
    // The parked run's time passes, the dead worker's lease runs out.
    tokio::time::sleep(LEASE + Duration::from_millis(500)).await;

    let found: BTreeSet<String> = app
        .services
        .flows()
        .reconcile_runs()
        .await
        .unwrap()
        .iter()
        .map(|id| id.to_string())
        .collect();
    let lost: BTreeSet<String> = [&queued, &waiting, &running].into_iter().cloned().collect();
    assert_eq!(found, lost);
    for status in ["queued", "running", "waiting"] {
        let seen = metric(
            &app,
            "waflow_flow_runs_reconciled_total",
            &[("status", status)],
        )
        .await;
        assert!(seen >= 1.0, "reconciled {status} runs are counted");
    }

    let _rescuer = worker(&app, None);
    let runs = [
        ("queued", queued),
        ("waiting", waiting),
        ("running", running),
    ];
    all_succeed(&app, &runs, Duration::from_secs(30)).await;
    for text in ["was queued", "was waiting", "was running"] {
        assert_eq!(sends_of(&meta, text).await, 1, "{text:?} reached Meta once");
    }
}

/// Runs with nothing due are not woken: one waiting for a reply for an hour, one queued behind
/// it (same concurrency key), one in a long delay, and one held by the worker sending for it.
async fn runs_that_wait_rightly_are_left_alone(backend: Backend) {
    let Some(mut app) = spawn_app_without_workers(backend).await else {
        return;
    };
    app.services.runs.reconcile_grace = Duration::ZERO;
    let meta = Meta::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .and(body_string_contains("\"body\":\"slow\""))
        .respond_with(Accepts(Duration::from_secs(5)))
        .with_priority(1)
        .mount(&meta.server)
        .await;
    let sender = setup(&app, &meta).await;
    let (keyed, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "concurrencyKey": "ana", "steps": [
            {"id": "wait", "type": "wait_for_reply", "senderId": sender, "phone": ANA, "timeoutSeconds": 3600}]}),
    )
    .await;
    let long = manual_flow(&app, json!([delay(3600)])).await;
    let slow = manual_flow(&app, json!([send(&sender, ANA, "slow")])).await;
    let _worker = worker(&app, None);
    let replying = run_flow(&app, &keyed, json!({})).await;
    until_status(&app, &replying, "WAITING").await;
    let behind = run_flow(&app, &keyed, json!({})).await;
    let delayed = run_flow(&app, &long, json!({})).await;
    until_status(&app, &delayed, "WAITING").await;
    let held = run_flow(&app, &slow, json!({})).await;
    eventually("the slow send to reach Meta", || async {
        (sends_of(&meta, "slow").await == 1).then_some(())
    })
    .await;
    // Every one of them has been quiet for longer than the grace (zero).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(run(&app, &behind).await["status"], "QUEUED");
    assert_eq!(run(&app, &held).await["status"], "RUNNING");
    let found = app.services.flows().reconcile_runs().await.unwrap();
    assert!(found.is_empty(), "woken for nothing: {found:?}");
}

/// A parked run's wake-up waits in the queue, past its time, while no worker runs: the
/// reconciler leaves it be (the queue's backlog is not a loss). Two more jobs for the run come
/// anyway (a duplicate delivery, and one with the wake-up's token as the reconciler queues): the
/// run goes on once, its message sent once.
async fn a_run_woken_thrice_sends_once(backend: Backend) {
    let Some(mut app) = spawn_app_without_workers(backend).await else {
        return;
    };
    app.services.runs.reconcile_grace = Duration::ZERO;
    let meta = Meta::start().await;
    let sender = setup(&app, &meta).await;
    let flow = manual_flow(&app, json!([delay(2), send(&sender, ANA, "once")])).await;
    let run_id = run_flow(&app, &flow, json!({})).await;
    let parker = worker(&app, None);
    until_status(&app, &run_id, "WAITING").await;
    parker.kill();
    let token = wake_token(&app, &run_id).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let found = app.services.flows().reconcile_runs().await.unwrap();
    assert!(
        found.is_empty(),
        "its wake-up waits in the queue: {found:?}"
    );
    poke(&app, &run_id, None).await;
    poke(&app, &run_id, Some(token)).await;
    let _next = worker(&app, None);
    all_succeed(
        &app,
        &[("woken thrice", run_id.clone())],
        Duration::from_secs(30),
    )
    .await;
    // The two that came late find nothing to do.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sends_of(&meta, "once").await, 1);
    let steps = run(&app, &run_id).await["steps"].clone();
    let sends: Vec<_> = steps
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stepId"] == "tell")
        .collect();
    assert_eq!(sends.len(), 1, "{steps}");
}

/// Workers look by themselves, once per tick: a run whose job was lost finishes with nobody
/// calling the reconciler.
async fn workers_reconcile_by_themselves(backend: Backend) {
    let Some(app) = spawn_app_without_workers(backend).await else {
        return;
    };
    let meta = Meta::start().await;
    let sender = setup(&app, &meta).await;
    let flow = manual_flow(&app, json!([send(&sender, ANA, "found")])).await;
    let run_id = run_flow(&app, &flow, json!({})).await;
    app.lose_flow_jobs().await;
    let _worker = Worker::start_with(&app, |services| {
        services.runs.reconcile_every = Duration::from_secs(1);
        services.runs.reconcile_grace = Duration::from_secs(1);
    });
    all_succeed(&app, &[("lost", run_id)], Duration::from_secs(30)).await;
    assert_eq!(sends_of(&meta, "found").await, 1);
}

on_both!(
    lost_runs_of_every_kind_are_found,
    runs_that_wait_rightly_are_left_alone,
    a_run_woken_thrice_sends_once,
    workers_reconcile_by_themselves,
);
