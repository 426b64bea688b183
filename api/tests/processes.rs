//! The production profile as it is deployed: two `serve --no-worker` and two `worker`
//! processes on one PostgreSQL and one Redis. Events cross between API processes; a webhook
//! Meta delivers ten times at once to both APIs is stored once and starts one run; runs spread
//! over the workers; and workers SIGKILLed mid-step and mid-delay leave their runs to the others,
//! each message reaching the provider exactly once.

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{
    cluster::{Api, CloudApi, Cluster, inbound_text, runs_in_log, until},
    next_data, subscribe, try_next_data,
};
use serde_json::json;

const CUSTOMER: &str = "+14155550123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_two_workers_share_one_postgres_and_redis() {
    let Some(mut cluster) = Cluster::new().await else {
        return;
    };
    let key = cluster.workspace();
    cluster.worker("worker-1").await;
    cluster.worker("worker-2").await;
    let one = cluster.api("api-1", &key).await;
    let two = cluster.api("api-2", &key).await;
    let meta = CloudApi::start().await;
    let sender = one.cloud_sender(&meta).await;

    one_delivery_of_many_is_stored_once(&one, &two, &sender).await;
    runs_spread_over_the_workers(&cluster, &one, &two).await;
    killed_workers_leave_their_runs_to_the_others(&mut cluster, &one, &sender, &meta).await;
}

/// Meta retries, and its retries may reach any API process, even at the same time: ten
/// concurrent deliveries of one message, to both APIs, store one message, start one run of the
/// flow it triggers, and tell a subscriber on the other API once.
async fn one_delivery_of_many_is_stored_once(one: &Api, two: &Api, sender: &str) {
    let flow = one
        .live_flow(json!({"trigger": {"type": "message_received", "senderId": sender},
            "steps": [{"id": "note", "type": "set_variables", "values": {"seen": "{{ trigger.message }}"}}]}))
        .await;
    let mut subscriber = subscribe(
        &two.base,
        &two.key,
        "subscription { messageReceived { message } }",
    )
    .await;
    let body = inbound_text(CUSTOMER, "wamid.TEN-TIMES", "hello from process one");
    let deliveries = (0..10).map(|n| {
        let api = if n % 2 == 0 { one } else { two };
        let body = body.clone();
        async move { api.webhook(&body).await }
    });
    let statuses = futures::future::join_all(deliveries).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let event = next_data(&mut subscriber, Duration::from_secs(10)).await;
    assert_eq!(
        event["messageReceived"]["message"],
        "hello from process one"
    );
    let runs = "query($f: ID!) { flowRuns(flowId: $f, first: 20) { edges { node { status } } } }";
    until("the run to finish", Duration::from_secs(30), || async {
        let data = one.gql(runs, json!({"f": flow})).await;
        (data["flowRuns"]["edges"][0]["node"]["status"] == "SUCCEEDED").then_some(())
    })
    .await;
    assert!(
        try_next_data(&mut subscriber, Duration::from_secs(1))
            .await
            .is_none(),
        "one event for one message"
    );
    let data = one.gql(runs, json!({"f": flow})).await;
    assert_eq!(
        data["flowRuns"]["edges"].as_array().unwrap().len(),
        1,
        "{data}"
    );
    let inbound = inbound_bodies(one).await;
    assert_eq!(inbound, vec!["hello from process one".to_owned()]);
    one.gql(
        "mutation($id: ID!) { setFlowEnabled(id: $id, enabled: false) { enabled } }",
        json!({"id": flow}),
    )
    .await;
}

/// A burst of runs, each calling a CRM that takes a second, started through both APIs: a
/// worker fetches only a couple of jobs beyond those it runs, so both workers get a share.
async fn runs_spread_over_the_workers(cluster: &Cluster, one: &Api, two: &Api) {
    let crm = slow_crm(Duration::from_secs(1)).await;
    let call = one
        .live_flow(json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "call", "type": "http_request", "url": format!("{}/slow", crm.base)}]}))
        .await;
    let starts = (0..40).map(|n| {
        let api = if n % 2 == 0 { one } else { two };
        let call = call.clone();
        async move { api.run_flow(&call, json!({"n": n})).await }
    });
    let runs: Vec<String> = futures::future::join_all(starts).await;
    one.all_succeed(&runs, Duration::from_secs(90))
        .await
        .unwrap();
    let started: BTreeSet<String> = runs.iter().cloned().collect();
    // A run is SUCCEEDED a moment before its job's last log line is written. A run may show in
    // both logs: a job that met a database error is retried, perhaps by the other worker.
    let (n_one, n_two) = until("the workers' logs", Duration::from_secs(10), || async {
        let by_one = runs_in_log(&cluster.log_path("worker-1"), "job finished");
        let by_two = runs_in_log(&cluster.log_path("worker-2"), "job finished");
        let counts = (
            by_one.intersection(&started).count(),
            by_two.intersection(&started).count(),
        );
        let worked: BTreeSet<&String> = by_one.union(&by_two).collect();
        started
            .iter()
            .all(|run| worked.contains(run))
            .then_some(counts)
    })
    .await;
    eprintln!("runs per worker: {n_one} and {n_two}");
    // One worker runs 16 at once and holds 2 more: 40 one-second runs cannot all be its.
    assert!(n_one >= 8 && n_two >= 8, "{n_one} and {n_two}");
}

/// A worker dies while runs are in their first step (an HTTP call), the other while they wait
/// in a delay; worker 3, started between, finishes them, each text sent once.
async fn killed_workers_leave_their_runs_to_the_others(
    cluster: &mut Cluster,
    one: &Api,
    sender: &str,
    meta: &CloudApi,
) {
    let crm = slow_crm(Duration::from_secs(3)).await;
    let flow = one
        .live_flow(json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "call", "type": "http_request", "url": format!("{}/slow", crm.base)},
            {"id": "wait", "type": "delay", "seconds": 3},
            {"id": "tell", "type": "send_text", "senderId": sender, "to": CUSTOMER,
             "text": "after the crash {{ trigger.n }}"}]}))
        .await;
    let starts = (0..12).map(|n| {
        let flow = flow.clone();
        async move { one.run_flow(&flow, json!({"n": n})).await }
    });
    let runs: BTreeSet<String> = futures::future::join_all(starts)
        .await
        .into_iter()
        .collect();
    // Every run is in its HTTP step (the two workers run up to 32 at once, the CRM takes 3 s);
    // the worker holding some of them dies with them.
    until(
        "every run to call the CRM",
        Duration::from_secs(20),
        || async { (crm.calls() >= runs.len()).then_some(()) },
    )
    .await;
    let busy = until("a worker mid-step", Duration::from_secs(20), || async {
        ["worker-1", "worker-2"].into_iter().find(|name| {
            let path = cluster.log_path(name);
            let started = runs_in_log(&path, "job started");
            let finished = runs_in_log(&path, "job finished");
            started.difference(&finished).any(|run| runs.contains(run))
        })
    })
    .await;
    cluster.kill(busy);
    cluster.worker("worker-3").await;
    let runs: Vec<String> = runs.into_iter().collect();
    until(
        "a run to wait in its delay",
        Duration::from_secs(60),
        || async {
            for run in &runs {
                if one.run_status(run).await == "WAITING" {
                    return Some(());
                }
            }
            None
        },
    )
    .await;
    cluster.kill(if busy == "worker-1" {
        "worker-2"
    } else {
        "worker-1"
    });
    // A dead worker's jobs return to the queue once its heartbeats are missed (15 s).
    if let Err(stuck) = one.all_succeed(&runs, Duration::from_secs(150)).await {
        panic!(
            "{stuck}; worker 3's last lines:\n{}",
            cluster.log_tail("worker-3", 40)
        );
    }
    assert!(
        crm.calls() > runs.len(),
        "the steps cut off by the crash ran again: {} calls",
        crm.calls()
    );
    let texts = meta.texts();
    for n in 0..12 {
        let text = format!("after the crash {n}");
        let count = texts.iter().filter(|t| **t == text).count();
        assert_eq!(count, 1, "{text:?} reached Meta {count} times: {texts:?}");
    }
}

async fn inbound_bodies(api: &Api) -> Vec<String> {
    let data = api
        .gql(
            "{ conversations(first: 10) { edges { node { messages(first: 100) { edges { node { body direction } } } } } } }",
            json!({}),
        )
        .await;
    data["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["node"]["messages"]["edges"].as_array().unwrap().clone())
        .filter(|m| m["node"]["direction"] == "INBOUND")
        .map(|m| m["node"]["body"].as_str().unwrap().to_owned())
        .collect()
}

/// A CRM stand-in that answers after `delay` and counts its calls.
struct SlowCrm {
    base: String,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowCrm {
    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn slow_crm(delay: Duration) -> SlowCrm {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                tokio::time::sleep(delay).await;
                axum::Json(json!({"ok": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    SlowCrm {
        base: format!("http://{addr}"),
        calls,
    }
}
