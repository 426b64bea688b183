//! A run never stays parked after its worker dies, wherever the worker dies. Each run below is
//! stopped dead at one of the engine's crash points, the points between two writes that a crash
//! can separate (a wake-up queued and the run saved as parked, say); then its worker is killed
//! and a fresh one must finish every run, each message reaching Meta once. The reconciler is
//! kept out of the way, so what is tested is the path itself, not the safety net.
//!
//! The waits that are cut right after the run is saved as parked last longer than the queue
//! takes to hand a dead worker's job to another (15-20 s on Redis): that job comes early, finds
//! nothing due, and leaves the run to its own wake-up, which must therefore exist.
//!
//! Two more: a job that finds the run held by another worker and then dies after queuing its
//! retry, and a worker that stalls past its lease while another takes the run over and finishes
//! it: the stalled one must not write to the run when it wakes.

use std::time::Duration;

use serde_json::json;
use waflow_jobs::crash_points::{CrashPoint, CrashPoints};
use waflow_tests::{Backend, Meta, eventually, spawn_app_without_workers};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{body_string_contains, method, path},
};

use super::{
    ANA, Accepts, BEN, PN, all_succeed, customer_writes, delay, manual_flow, on_both, poke, send,
    sends_of, setup, status, texts, until_status, uuid, wake_token, worker,
};
use crate::flows::{live_flow, run, run_flow};

/// Seconds a run cut right after parking waits: longer than a dead worker's job takes to come
/// back.
const PARKED: u64 = 30;

/// Waits until `count` armed points were reached.
async fn until_reached(reached: &mut tokio::sync::watch::Receiver<usize>, count: usize) {
    let waited = tokio::time::timeout(Duration::from_secs(30), reached.wait_for(|n| *n >= count))
        .await
        .map(|_| ());
    if waited.is_err() {
        panic!("only {} of {count} crash points reached", *reached.borrow());
    }
}

async fn every_crash_point_is_survived(backend: Backend) {
    let Some(app) = spawn_app_without_workers(backend).await else {
        return;
    };
    let meta = Meta::start().await;
    // The first attempt of "retry-parked" fails at Meta, the second goes through.
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .and(body_string_contains("\"body\":\"retry-parked\""))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
            "message": "Service temporarily unavailable", "type": "OAuthException", "code": 2}})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&meta.server)
        .await;
    let sender = setup(&app, &meta).await;
    let tell = |to: &str, text: &str| send(&sender, to, text);
    let wait = |phone: &str, timeout: u64| {
        json!({"id": "wait", "type": "wait_for_reply",
        "senderId": sender, "phone": phone, "timeoutSeconds": timeout})
    };
    let start = |steps: serde_json::Value| {
        let app = &app;
        async move { run_flow(app, &manual_flow(app, steps).await, json!({})).await }
    };

    let delay_parked = start(json!([delay(PARKED), tell(ANA, "delay-parked")])).await;
    let delay_queued = start(json!([delay(2), tell(ANA, "delay-queued")])).await;
    let mut retried = tell(ANA, "retry-parked");
    retried["retry"] = json!({"maxAttempts": 2, "backoffSeconds": PARKED});
    let retry_parked = start(json!([retried])).await;
    let timeout_parked = start(json!([
        wait(ANA, PARKED),
        tell(ANA, "timed out: {{ steps.wait.timed_out }}")
    ]))
    .await;
    let reply_taken = start(json!([
        wait(BEN, 3600),
        tell(BEN, "got: {{ steps.wait.message.message }}")
    ]))
    .await;
    let early = start(json!([delay(4), tell(ANA, "early-wake")])).await;
    let (keyed, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "concurrencyKey": "one at a time",
               "steps": [delay(2), tell(ANA, "release {{ trigger.n }}")]}),
    )
    .await;
    let first = run_flow(&app, &keyed, json!({"n": 1})).await;

    let (points, mut reached) = CrashPoints::new();
    for (point, run_id) in [
        (CrashPoint::Parked, &delay_parked),
        (CrashPoint::WakeQueued, &delay_queued),
        (CrashPoint::Parked, &retry_parked),
        (CrashPoint::Parked, &timeout_parked),
        (CrashPoint::ReplyTaken, &reply_taken),
        (CrashPoint::WakeRescheduled, &early),
        (CrashPoint::Finished, &first),
    ] {
        points.arm(point, uuid(run_id));
    }
    let doomed = worker(&app, Some(points));

    // Ben answers the run waiting for him.
    until_status(&app, &reply_taken, "WAITING").await;
    customer_writes(&app, BEN, "wamid.IN-BEN-2", "the answer").await;
    // The early run's wake-up, delivered before its time.
    until_status(&app, &early, "WAITING").await;
    poke(&app, &early, Some(wake_token(&app, &early).await)).await;
    // The second run of the key queues behind the first, which waits in its delay: the only
    // thing that will ever start it is the first one's release.
    until_status(&app, &first, "WAITING").await;
    let second = run_flow(&app, &keyed, json!({"n": 2})).await;
    until_reached(&mut reached, 7).await;
    assert_eq!(status(&app, &second).await, "QUEUED");
    doomed.kill();

    let _rescuer = worker(&app, None);
    let runs = [
        ("delay, saved as parked", delay_parked),
        ("delay, wake-up queued", delay_queued),
        ("retry, saved as parked", retry_parked),
        ("reply timeout, saved as parked", timeout_parked),
        ("reply taken", reply_taken),
        ("early wake-up rescheduled", early),
        ("finished, next not released", first),
        ("next of the key", second),
    ];
    all_succeed(&app, &runs, Duration::from_secs(90)).await;
    for text in [
        "delay-parked",
        "delay-queued",
        "timed out: True",
        "got: the answer",
        "early-wake",
        "release 1",
        "release 2",
    ] {
        assert_eq!(
            sends_of(&meta, text).await,
            1,
            "{text:?} reached Meta once; all texts: {:?}",
            texts(&meta).await
        );
    }
    // One refused attempt, one that went through.
    assert_eq!(sends_of(&meta, "retry-parked").await, 2);
}

/// A job finds the run held by the worker sending its message, queues its retry and dies; the
/// holder dies too, mid-send. The run finishes on a third worker, its message sent once.
async fn a_held_run_survives_both_workers(backend: Backend) {
    let Some(app) = spawn_app_without_workers(backend).await else {
        return;
    };
    let meta = Meta::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .and(body_string_contains("\"body\":\"held\""))
        .respond_with(Accepts(Duration::from_secs(3)))
        .with_priority(1)
        .mount(&meta.server)
        .await;
    let sender = setup(&app, &meta).await;
    let flow = manual_flow(&app, json!([send(&sender, ANA, "held")])).await;
    let run_id = run_flow(&app, &flow, json!({})).await;
    // Both workers are armed: whichever takes the second job finds the run held by the job
    // sending, queues its retry and stops there.
    let (points, mut reached) = CrashPoints::new();
    points.arm(CrashPoint::HeldRetryQueued, uuid(&run_id));
    let holder = worker(&app, Some(points.clone()));
    eventually("the send to reach Meta", || async {
        (sends_of(&meta, "held").await == 1).then_some(())
    })
    .await;
    let late = worker(&app, Some(points));
    poke(&app, &run_id, None).await;
    until_reached(&mut reached, 1).await;
    late.kill();
    holder.kill();
    let _third = worker(&app, None);
    all_succeed(&app, &[("held", run_id)], Duration::from_secs(60)).await;
    assert_eq!(sends_of(&meta, "held").await, 1);
}

/// A worker stalls after queuing a delay's wake-up, past its lease; the wake-up finds the run
/// free, takes it over and finishes it. When the stalled job wakes it must not save its stale
/// "parked" state over the finished run.
async fn a_stalled_worker_cannot_overwrite_the_run_on(backend: Backend) {
    let Some(app) = spawn_app_without_workers(backend).await else {
        return;
    };
    let meta = Meta::start().await;
    let sender = setup(&app, &meta).await;
    let flow = manual_flow(&app, json!([delay(1), send(&sender, ANA, "stalled")])).await;
    let run_id = run_flow(&app, &flow, json!({})).await;
    let (points, mut reached) = CrashPoints::new();
    let stall = Duration::from_secs(8);
    points.stall(CrashPoint::WakeQueued, uuid(&run_id), stall);
    let _stalled = worker(&app, Some(points));
    until_reached(&mut reached, 1).await;
    let stalled_since = std::time::Instant::now();
    // A stall holds up the whole process: another one takes over.
    let _other = worker(&app, None);
    all_succeed(
        &app,
        &[("taken over", run_id.clone())],
        Duration::from_secs(30),
    )
    .await;
    let finished = run(&app, &run_id).await;
    assert!(
        stalled_since.elapsed() < stall,
        "the run was taken over only after the stall ended"
    );
    // The stalled job wakes and tries to save the run as parked.
    tokio::time::sleep(stall.saturating_sub(stalled_since.elapsed()) + Duration::from_secs(3))
        .await;
    let after = run(&app, &run_id).await;
    assert_eq!(after["status"], "SUCCEEDED", "{after}");
    assert_eq!(after["finishedAt"], finished["finishedAt"]);
    assert_eq!(after["steps"], finished["steps"]);
    assert_eq!(sends_of(&meta, "stalled").await, 1);
}

on_both!(
    every_crash_point_is_survived,
    a_held_run_survives_both_workers
);

/// On SQLite a stalled process can stall every other with it (it may hold the database's one
/// write lock), and the embedded profile is one process: the takeover is PostgreSQL's case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_cannot_overwrite_the_run() {
    a_stalled_worker_cannot_overwrite_the_run_on(Backend::Postgres).await;
}
