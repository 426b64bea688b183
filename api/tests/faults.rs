//! Faults a production deployment meets, survived by real processes: Redis restarted under
//! them, and PostgreSQL out of reach for a while. Each test has its own Redis server or a proxy
//! in front of PostgreSQL, so the servers other tests share are never touched.

mod common;

use std::time::Duration;

use common::{
    cluster::{Api, CloudApi, Cluster, inbound_text, until},
    proxy::Proxy,
    redis_server::RedisServer,
    subscribe, try_next_data,
};
use serde_json::{Value, json};

const CUSTOMER: &str = "+14155550123";

async fn readyz(api: &Api) -> (u16, Value) {
    let response = api
        .http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Redis (with its append-only file, as production needs) shuts down and comes back while runs
/// wait in a delay: the processes reconnect by themselves, the runs finish with one message
/// each, readiness says what happened, and an open subscription hears new events again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_no_job_and_subscriptions_resume() {
    let Some(mut cluster) = Cluster::new().await else {
        return;
    };
    let redis_dir = cluster.dir.path().join("redis");
    std::fs::create_dir(&redis_dir).unwrap();
    let Some(mut redis) = RedisServer::start(redis_dir).await else {
        return;
    };
    cluster.redis_url = redis.url();
    let key = cluster.workspace();
    cluster.worker("worker").await;
    let api = cluster.api("api", &key).await;
    let meta = CloudApi::start().await;
    let sender = api.cloud_sender(&meta).await;
    assert_eq!(
        api.webhook(&inbound_text(CUSTOMER, "wamid.BEFORE", "hi"))
            .await,
        200
    );

    let flow = api
        .live_flow(json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "wait", "type": "delay", "seconds": 4},
            {"id": "tell", "type": "send_text", "senderId": sender, "to": CUSTOMER,
             "text": "after the restart {{ trigger.n }}"}]}))
        .await;
    let mut runs = Vec::new();
    for n in 0..5 {
        runs.push(api.run_flow(&flow, json!({"n": n})).await);
    }
    until("the runs to wait", Duration::from_secs(20), || async {
        (api.run_status(&runs[4]).await == "WAITING").then_some(())
    })
    .await;
    let mut subscriber = subscribe(
        &api.base,
        &api.key,
        "subscription { messageReceived { message } }",
    )
    .await;

    redis.stop().await;
    let (status, body) = readyz(&api).await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["redis"], "ok", "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.start_again().await;

    if let Err(stuck) = api.all_succeed(&runs, Duration::from_secs(60)).await {
        panic!(
            "{stuck}; the worker's last lines:\n{}",
            cluster.log_tail("worker", 40)
        );
    }
    let texts = meta.texts();
    for n in 0..5 {
        let text = format!("after the restart {n}");
        assert_eq!(
            texts.iter().filter(|t| **t == text).count(),
            1,
            "{text}: {texts:?}"
        );
    }
    until("readiness to return", Duration::from_secs(20), || async {
        (readyz(&api).await.0 == 200).then_some(())
    })
    .await;

    // The API's event listener resubscribes by itself; until it has, events published are
    // missed, as Meta's retries would be by a subscriber that reconnects. Keep writing.
    let mut heard = None;
    for attempt in 0..20 {
        let body = inbound_text(CUSTOMER, &format!("wamid.AFTER-{attempt}"), "still there?");
        let status = api.webhook(&body).await;
        assert_eq!(
            status,
            200,
            "the API's last lines:\n{}",
            cluster.log_tail("api", 20)
        );
        heard = try_next_data(&mut subscriber, Duration::from_secs(1)).await;
        if heard.is_some() {
            break;
        }
    }
    assert_eq!(
        heard.expect("the open subscription heard an event after the restart")["messageReceived"]["message"],
        "still there?"
    );
    let after = api.run_flow(&flow, json!({"n": 5})).await;
    api.all_succeed(&[after], Duration::from_secs(30))
        .await
        .unwrap();
}

/// PostgreSQL drops out of reach: Meta's webhook is answered 503 (so Meta retries), GraphQL
/// answers UNAVAILABLE, readiness fails; nothing is half-written. When it is back, the retried
/// delivery is stored once and the workers run again, with no process restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_survived_without_a_restart() {
    let Some(mut cluster) = Cluster::new().await else {
        return;
    };
    let (before_host, rest) = cluster.database_url.split_once('@').unwrap();
    let (host, database) = rest.split_once('/').unwrap();
    let upstream = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
    let proxy = Proxy::start(upstream).await;
    cluster.process_database_url = format!("{before_host}@{}/{database}", proxy.addr);
    let key = cluster.workspace();
    cluster.worker("worker").await;
    let api = cluster.api("api", &key).await;
    let meta = CloudApi::start().await;
    api.cloud_sender(&meta).await;
    let first = inbound_text("+14155550101", "wamid.FIRST", "before the outage");
    assert_eq!(api.webhook(&first).await, 200);

    proxy.cut();
    let during = inbound_text("+14155550102", "wamid.DURING", "during the outage");
    assert_eq!(api.webhook(&during).await, 503, "Meta will retry");
    let answer = api
        .answer(
            "{ conversations(first: 5) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{answer}"
    );
    let (status, body) = readyz(&api).await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["database"], "ok", "{body}");
    proxy.restore();

    // Meta retries the delivery until it is accepted.
    until(
        "the retried delivery to be accepted",
        Duration::from_secs(30),
        || async { (api.webhook(&during).await == 200).then_some(()) },
    )
    .await;
    assert_eq!(
        api.webhook(&during).await,
        200,
        "a later retry is acknowledged"
    );
    let data = api
        .gql(
            "{ conversations(first: 10) { edges { node { customerPhone messages(first: 10) { edges { node { body } } } } } } }",
            json!({}),
        )
        .await;
    let mut seen: Vec<(String, Vec<String>)> = data["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let bodies = c["node"]["messages"]["edges"].as_array().unwrap();
            let bodies = bodies
                .iter()
                .map(|m| m["node"]["body"].as_str().unwrap().to_owned());
            (
                c["node"]["customerPhone"].as_str().unwrap().to_owned(),
                bodies.collect(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "+14155550101".to_owned(),
                vec!["before the outage".to_owned()]
            ),
            (
                "+14155550102".to_owned(),
                vec!["during the outage".to_owned()]
            ),
        ]
    );
    let flow = api
        .live_flow(json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "note", "type": "set_variables", "values": {"ok": "yes"}}]}))
        .await;
    let run = api.run_flow(&flow, json!({})).await;
    if let Err(stuck) = api.all_succeed(&[run], Duration::from_secs(30)).await {
        panic!(
            "{stuck}; the worker's last lines:\n{}",
            cluster.log_tail("worker", 40)
        );
    }
    assert_eq!(readyz(&api).await.0, 200);
}
