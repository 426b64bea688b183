//! What a run costs the database (issue 20's "work per unit"): the statements on runs and step
//! records from a flow webhook's request to the run's end, counted on the server's own
//! connection. A run of steps without side effects is one insert by the hook, one statement
//! that takes the run (lease, row and concurrency check at once), and one save at its end
//! (the step records, the run, the next run of its key): no read of the version per run, no
//! save per step.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    enums::{RunStatus, StepStatus},
    flow_run, step_run,
};
use waflow_jobs::db;
use waflow_tests::{Backend, TestApp, eventually, spawn_app_with};

use crate::flows::live_flow;

/// The statements on `flow_run` and `step_run` a counting window saw.
#[derive(Clone, Default)]
struct Statements {
    counting: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Statements {
    fn take(&self) -> Vec<String> {
        self.counting.store(false, Ordering::SeqCst);
        std::mem::take(&mut self.seen.lock().unwrap())
    }
}

async fn app_counting(backend: Backend) -> Option<(TestApp, Statements)> {
    let statements = Statements::default();
    let counter = statements.clone();
    let app = spawn_app_with(backend, move |services| {
        // The reconciler reads runs too; it stays out of the window.
        services.runs.reconcile_every = Duration::from_secs(3600);
        services.db.set_metric_callback(move |info| {
            let sql = info.statement.sql.as_str();
            if counter.counting.load(Ordering::SeqCst)
                && (sql.contains("flow_run") || sql.contains("step_run"))
            {
                counter.seen.lock().unwrap().push(sql.to_owned());
            }
        });
    })
    .await?;
    Some((app, statements))
}

/// A live flow of one `set_variables` step behind a webhook: its hook's URL and secret.
async fn one_step_flow(app: &TestApp) -> (String, String) {
    let (flow, secret) = live_flow(
        app,
        json!({"trigger": {"type": "webhook"},
               "steps": [{"id": "note", "type": "set_variables", "values": {"a": 1}}]}),
    )
    .await;
    (app.url(&format!("/hooks/flows/{flow}")), secret)
}

/// Calls a flow's hook for `customer`; answers the 202's body.
async fn call_hook(app: &TestApp, hook: &str, secret: &str, customer: &str) -> Value {
    let answer = app
        .http
        .post(hook)
        .bearer_auth(secret)
        .json(&json!({"customer": customer}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    answer.json().await.unwrap()
}

async fn a_run_of_pure_steps_costs_five_statements(backend: Backend) {
    let Some((app, statements)) = app_counting(backend).await else {
        return;
    };
    let (flow, secret) = live_flow(
        &app,
        json!({"trigger": {"type": "webhook"}, "concurrencyKey": "{{ trigger.customer }}",
               "steps": [
                 {"id": "greet", "type": "set_variables", "values": {"greeting": "Hi {{ trigger.customer }}"}},
                 {"id": "which", "type": "branch", "branches": [
                   {"when": "trigger.customer == 'ada'", "steps": [
                     {"id": "vip", "type": "set_variables", "values": {"vip": true}}]}]},
                 {"id": "done", "type": "stop"}]}),
    )
    .await;
    let hook = app.url(&format!("/hooks/flows/{flow}"));
    // Read apart from the server's own connection, which counts.
    let observer = db::connect(&app.database.url()).await.unwrap();
    // A first run reads the published version into memory; the second one is counted.
    for (customer, counted) in [("bob", false), ("ada", true)] {
        statements.counting.store(counted, Ordering::SeqCst);
        let answer = call_hook(&app, &hook, &secret, customer).await;
        let run_id = Uuid::parse_str(answer["runId"].as_str().unwrap()).unwrap();
        let observer = &observer;
        let run = eventually("the run's end", || async move {
            let run = flow_run::Entity::find_by_id(run_id)
                .one(observer)
                .await
                .unwrap();
            run.filter(|r| r.finished_at.is_some())
        })
        .await;
        let seen = statements.take();
        if !counted {
            continue;
        }
        assert!(seen.len() <= 5, "{} statements: {seen:#?}", seen.len());
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(
            run.state["vars"],
            json!({"greeting": "Hi ada", "vip": true})
        );
        let mut steps: Vec<_> = step_run::Entity::find()
            .filter(step_run::Column::RunId.eq(run_id))
            .all(observer)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.step_id, r.status))
            .collect();
        steps.sort_by(|a, b| a.0.cmp(&b.0));
        let succeeded = |id: &str| (id.to_owned(), StepStatus::Succeeded);
        assert_eq!(
            steps,
            [
                succeeded("done"),
                succeeded("greet"),
                succeeded("vip"),
                succeeded("which")
            ]
        );
    }
}

#[tokio::test]
async fn a_run_of_pure_steps_costs_five_statements_on_sqlite() {
    a_run_of_pure_steps_costs_five_statements(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_run_of_pure_steps_costs_five_statements_on_postgres() {
    a_run_of_pure_steps_costs_five_statements(Backend::Postgres).await;
}

/// On SQLite a commit is on disk after a sync of the WAL (`db::Durability`): the hook's answer
/// waits for one, so a run answered 202 survives a power cut.
#[tokio::test]
async fn a_hook_answers_once_its_run_is_on_disk() {
    let app = waflow_tests::spawn_app(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let db::Durability::AtWalSync(wal) = &app.services.durability else {
        panic!("a SQLite file is durable after a WAL sync");
    };
    let (hook, secret) = one_step_flow(&app).await;
    let before = wal.syncs();
    call_hook(&app, &hook, &secret, "ada").await;
    assert!(wal.syncs() > before, "the answer came before a WAL sync");
}

/// Finished jobs leave the SQLite queue (`Queue::forget_done`, every tick): apalis-sqlite's
/// acknowledgements read every job their worker ever finished, so kept ones cost more with
/// each run.
#[tokio::test]
async fn finished_jobs_leave_the_sqlite_queue() {
    let app = waflow_tests::spawn_app(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let (hook, secret) = one_step_flow(&app).await;
    for customer in ["ada", "bob", "eve"] {
        call_hook(&app, &hook, &secret, customer).await;
    }
    let observer = db::connect(&app.database.url()).await.unwrap();
    let count = |sql: &'static str| {
        let observer = observer.clone();
        async move {
            observer
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    sql,
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<i64>(0)
                .unwrap()
        }
    };
    eventually("the three runs to finish", || async {
        (count("SELECT count(*) FROM flow_run WHERE status = 'SUCCEEDED'").await == 3).then_some(())
    })
    .await;
    // Acknowledged, then deleted: none is left, done or not.
    eventually("their jobs to be acknowledged and deleted", || async {
        (count("SELECT count(*) FROM Jobs WHERE job_type = 'waflow-flows'").await == 0)
            .then_some(())
    })
    .await;
}

/// A send step flushes SQLite's WAL once before its message leaves: the step's record and the
/// stored message, committed one after the other, share the fsync `messaging` makes before the
/// provider call.
#[tokio::test]
async fn a_send_step_flushes_the_wal_once() {
    use crate::durability::{ANA, Accepts, PN, customer_writes, until_status};
    let app = waflow_tests::spawn_app(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let db::Durability::AtWalSync(wal) = &app.services.durability else {
        panic!("a SQLite file is durable after a WAL sync");
    };
    let meta = waflow_tests::Meta::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(format!("/v21.0/{PN}/messages")))
        .respond_with(Accepts(Duration::from_secs(2)))
        .mount(&meta.server)
        .await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    customer_writes(&app, ANA, "wamid.IN-COSTS", "hello").await;
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "pause", "type": "delay", "seconds": 1},
            {"id": "tell", "type": "send_text", "senderId": sender, "to": ANA, "text": "once"}]}),
    )
    .await;
    let run_id = crate::flows::run_flow(&app, &flow, json!({})).await;
    until_status(&app, &run_id, "WAITING").await;
    // From here only the worker writes: no request to the server until the send is out.
    let before = wal.syncs();
    let sends = || async {
        meta.requests("POST", &format!("/{PN}/messages"))
            .await
            .len()
    };
    eventually("the send to reach Meta", || async {
        (sends().await == 1).then_some(())
    })
    .await;
    assert_eq!(
        wal.syncs() - before,
        1,
        "WAL syncs between the wake-up and the send"
    );
}

/// The check that a run may start (no earlier run of its key unfinished) reads only the key's
/// unfinished runs, whatever the plan: each lookup of an earlier run is an index condition on
/// the key and the status, so a key's finished runs (a customer's history) cost nothing. Read
/// off PostgreSQL's generic plan (the one prepared statements end up with) of the statement
/// that takes a run, with sequential and bitmap scans off so that the index's use shows.
#[tokio::test]
async fn taking_a_run_reads_only_its_keys_unfinished_runs() {
    let Some((app, statements)) = app_counting(Backend::Postgres).await else {
        return;
    };
    let (flow, secret) = live_flow(
        &app,
        json!({"trigger": {"type": "webhook"}, "concurrencyKey": "{{ trigger.customer }}",
               "steps": [{"id": "note", "type": "set_variables", "values": {"a": 1}}]}),
    )
    .await;
    let hook = app.url(&format!("/hooks/flows/{flow}"));
    statements.counting.store(true, Ordering::SeqCst);
    let answer = call_hook(&app, &hook, &secret, "ada").await;
    let run_id = Uuid::parse_str(answer["runId"].as_str().unwrap()).unwrap();
    let db = &app.services.db;
    eventually("the run's end", || async move {
        let run = flow_run::Entity::find_by_id(run_id).one(db).await.unwrap();
        run.filter(|r| r.finished_at.is_some())
    })
    .await;
    let take = statements
        .take()
        .into_iter()
        .find(|sql| sql.starts_with("UPDATE flow_run SET locked_until") && sql.contains("id = $4"))
        .expect("the statement that takes a run");
    let observer = sea_orm::Database::connect(app.database.url())
        .await
        .unwrap();
    let session = observer.begin().await.unwrap();
    for setting in [
        "SET LOCAL plan_cache_mode = force_generic_plan",
        "SET LOCAL enable_seqscan = off",
        "SET LOCAL enable_bitmapscan = off",
    ] {
        session.execute_unprepared(setting).await.unwrap();
    }
    session
        .execute_unprepared(&format!(
            "PREPARE take (timestamptz, uuid, timestamptz, uuid) AS {take}"
        ))
        .await
        .unwrap();
    let plan = session
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "EXPLAIN (FORMAT JSON) EXECUTE take (now(), gen_random_uuid(), now(), gen_random_uuid())",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<Value>(0)
        .unwrap();
    session.rollback().await.unwrap();
    let mut lookups = Vec::new();
    earlier_scans(&plan, &mut lookups);
    assert!(!lookups.is_empty(), "no lookup of earlier runs in {plan:#}");
    for lookup in &lookups {
        let condition = lookup["Index Cond"].as_str().unwrap_or_default();
        assert!(
            condition.contains("concurrency_key") && condition.contains("status"),
            "an earlier run is looked up by {condition:?}, reading every run of the key: {lookup:#}"
        );
    }
}

/// The plan nodes that scan `flow_run AS earlier`.
fn earlier_scans<'a>(node: &'a Value, found: &mut Vec<&'a Value>) {
    match node {
        Value::Array(items) => items.iter().for_each(|item| earlier_scans(item, found)),
        Value::Object(fields) => {
            if fields.get("Alias").and_then(Value::as_str) == Some("earlier") {
                found.push(node);
            }
            fields
                .values()
                .for_each(|value| earlier_scans(value, found));
        }
        _ => {}
    }
}
