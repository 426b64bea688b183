//! Running Waflow: the readiness probe a load balancer asks, the metrics Prometheus scrapes, and
//! the pruning of old flow runs.

use chrono::{Duration, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{flow_run, step_run};
use waflow_jobs::{queue::SystemJob, queue_stats::QueueStats};
use waflow_tests::{Backend, TestApp, error_code};

use crate::flows::{live_flow, run_flow, run_in};

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Ready: the database and (in production) Redis answer, and the schema is current.
async fn a_ready_process_says_so(app: TestApp) {
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "current");
    match app.backend {
        Backend::Sqlite => assert_eq!(body["redis"], Value::Null, "the embedded profile has none"),
        Backend::Postgres => assert_eq!(body["redis"], "ok"),
    }
}

/// A schema behind this binary (a rollout that skipped `waflow migrate`) is not ready: 503,
/// saying what to do.
async fn a_pending_migration_is_not_ready(app: TestApp) {
    app.services
        .db
        .execute_unprepared(
            "DELETE FROM seaql_migrations WHERE version = \
             (SELECT MAX(version) FROM seaql_migrations)",
        )
        .await
        .unwrap();
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "1 pending: run `waflow migrate`");
}

async fn steps_of(app: &TestApp, run_id: Uuid) -> u64 {
    step_run::Entity::find()
        .filter(step_run::Column::RunId.eq(run_id))
        .count(&app.services.db)
        .await
        .unwrap()
}

/// Finished runs older than the retention go, with their steps; recent ones and runs still
/// waiting (however old) stay.
async fn old_finished_runs_are_pruned(app: TestApp) {
    let (quick, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "note", "type": "set_variables", "values": {"done": "yes"}}]}),
    )
    .await;
    let (slow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "later", "type": "delay", "seconds": 86400}]}),
    )
    .await;
    let old = run_flow(&app, &quick, json!({})).await;
    let recent = run_flow(&app, &quick, json!({})).await;
    let waiting = run_flow(&app, &slow, json!({})).await;
    run_in(&app, &old, "SUCCEEDED").await;
    run_in(&app, &recent, "SUCCEEDED").await;
    run_in(&app, &waiting, "WAITING").await;
    let [old, recent, waiting] = [old, recent, waiting].map(|id| Uuid::parse_str(&id).unwrap());
    assert!(steps_of(&app, old).await > 0);

    // The old run finished forty days ago; the waiting one started then.
    let forty_days_ago = Utc::now() - Duration::days(40);
    flow_run::Entity::update_many()
        .col_expr(flow_run::Column::FinishedAt, Expr::value(forty_days_ago))
        .filter(flow_run::Column::Id.eq(old))
        .exec(&app.services.db)
        .await
        .unwrap();
    flow_run::Entity::update_many()
        .col_expr(flow_run::Column::CreatedAt, Expr::value(forty_days_ago))
        .filter(flow_run::Column::Id.eq(waiting))
        .exec(&app.services.db)
        .await
        .unwrap();

    let pruned = app
        .services
        .flows()
        .prune_finished_runs(Utc::now() - Duration::days(30))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let gone = app
        .gql(
            "query($id: ID!) { flowRun(id: $id) { id } }",
            json!({"id": old.to_string()}),
        )
        .await;
    assert_eq!(error_code(&gone), Some("NOT_FOUND"), "{gone}");
    assert_eq!(steps_of(&app, old).await, 0, "its steps went with it");
    for kept in [recent, waiting] {
        assert!(
            flow_run::Entity::find_by_id(kept)
                .one(&app.services.db)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(steps_of(&app, recent).await > 0);
}

/// One `/metrics` scrape, as Prometheus reads it.
async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}

/// The value of one series in a `/metrics` scrape (0 when absent), matched by its name and
/// every label given.
pub async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = scrape(app).await;
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What happened shows in `/metrics`: messages by sender, HTTP requests by route, GraphQL
/// errors by code, finished jobs by kind, open subscriptions. Other tests share the process's
/// counters, so only this test's sender is counted exactly; the rest must at least grow.
async fn metrics_count_what_happens(app: TestApp) {
    let sender = app.sandbox_sender("+14155550166").await;
    let by_sender = [("sender", sender.as_str())];
    assert_eq!(
        metric(&app, "waflow_messages_received_total", &by_sender).await,
        0.0
    );
    let requests = [("method", "POST"), ("route", "/graphql"), ("status", "200")];
    let graphql_before = metric(&app, "waflow_http_requests_total", &requests).await;
    let invalid_before = metric(
        &app,
        "waflow_graphql_errors_total",
        &[("code", "VALIDATION_FAILED")],
    )
    .await;

    app.customer_writes(&sender, "+14155550167", "hello").await;
    app.ok(
        "mutation($input: SendTextMessageInput!) { sendTextMessage(input: $input) { id } }",
        json!({"input": {"senderId": sender, "to": "+14155550167", "text": "hi!"}}),
    )
    .await;
    let bad = app.gql("{ noSuchField }", json!({})).await;
    assert_eq!(error_code(&bad), Some("VALIDATION_FAILED"));

    assert_eq!(
        metric(&app, "waflow_messages_received_total", &by_sender).await,
        1.0
    );
    assert_eq!(
        metric(&app, "waflow_messages_sent_total", &by_sender).await,
        1.0
    );
    assert!(metric(&app, "waflow_http_requests_total", &requests).await >= graphql_before + 3.0);
    assert!(
        metric(
            &app,
            "waflow_graphql_errors_total",
            &[("code", "VALIDATION_FAILED")]
        )
        .await
            > invalid_before
    );
    // The sandbox reports the send's progress through jobs.
    waflow_tests::eventually("a sandbox status job to finish", || async {
        (metric(
            &app,
            "waflow_jobs_finished_total",
            &[("kind", "sandbox_status"), ("result", "succeeded")],
        )
        .await
            >= 1.0)
            .then_some(())
    })
    .await;

    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber
        .subscribe("watch", "subscription { messageReceived { messageId } }")
        .await;
    waflow_tests::eventually("the open subscription to count", || async {
        (metric(&app, "waflow_graphql_subscriptions_active", &[]).await >= 1.0).then_some(())
    })
    .await;
}

/// The backlog `/metrics` reports, read from the queue itself: jobs due and not taken, jobs
/// waiting for their time, and how long the oldest due one has waited. No worker runs here, so
/// nothing is taken.
async fn queue_backlog_is_measured(backend: Backend) {
    let Some(app) = waflow_tests::spawn_app_without_workers(backend).await else {
        return;
    };
    let jobs = &app.services.jobs;
    let system = |stats: Vec<QueueStats>| stats.into_iter().find(|q| q.queue == "system").unwrap();
    let empty = system(jobs.stats().await.unwrap());
    assert_eq!((empty.ready, empty.scheduled), (0, 0));
    assert_eq!(empty.oldest_ready_age, std::time::Duration::ZERO);

    let refresh = || SystemJob::RefreshSender {
        sender_id: Uuid::now_v7(),
    };
    for _ in 0..3 {
        jobs.system.push(refresh(), None).await.unwrap();
    }
    for _ in 0..2 {
        let an_hour = Some(std::time::Duration::from_secs(3600));
        jobs.system.push(refresh(), an_hour).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let backlog = system(jobs.stats().await.unwrap());
    assert_eq!((backlog.ready, backlog.scheduled), (3, 2), "{backlog:?}");
    assert!(
        backlog.oldest_ready_age >= std::time::Duration::from_secs(1)
            && backlog.oldest_ready_age < std::time::Duration::from_secs(60),
        "{backlog:?}"
    );
    let flows = jobs.stats().await.unwrap();
    assert_eq!(flows.iter().find(|q| q.queue == "flows").unwrap().ready, 0);

    let text = scrape(&app).await;
    for series in [
        "waflow_queue_depth{queue=\"system\",state=\"ready\"}",
        "waflow_queue_depth{queue=\"flows\",state=\"scheduled\"}",
        "waflow_queue_oldest_job_age_seconds{queue=\"system\"}",
    ] {
        assert!(text.contains(series), "{series} in {text}");
    }
}

mod queue_backlog_is_measured {
    #[tokio::test]
    async fn sqlite() {
        super::queue_backlog_is_measured(waflow_tests::Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        super::queue_backlog_is_measured(waflow_tests::Backend::Postgres).await;
    }
}

waflow_tests::on_both_databases!(
    a_ready_process_says_so,
    a_pending_migration_is_not_ready,
    old_finished_runs_are_pruned,
    metrics_count_what_happens,
);
