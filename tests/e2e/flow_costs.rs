//! What a run costs the database (issue 20's "work per unit"): the statements on runs and step
//! records from a flow webhook's request to the run's end, counted on the server's own
//! connection. A run of steps without side effects is one insert by the hook, one statement
//! that takes the run (lease, row and concurrency check at once), and one save at its end
//! (the step records, the run, the next run of its key): no read of the version per run, no
//! save per step.

use std::time::Duration;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    enums::{RunStatus, StepStatus},
    flow_run, step_run,
};
use waflow_jobs::db;
use waflow_tests::{Backend, TestApp, eventually, spawn_app_logging};

/// The statements counted: those on runs and step records.
const RUN_TABLES: &[&str] = &["flow_run", "step_run"];

use crate::{
    concurrency_keys::{call_hook, keyed_flow},
    flows::live_flow,
};

/// The run once it has ended, read on `observer` (a connection of the test's own, so that the
/// server's statements are the only ones counted).
async fn ended(observer: &sea_orm::DatabaseConnection, run_id: &str) -> flow_run::Model {
    let run_id = Uuid::parse_str(run_id).unwrap();
    eventually("the run's end", || async move {
        let run = flow_run::Entity::find_by_id(run_id)
            .one(observer)
            .await
            .unwrap();
        run.filter(|r| r.finished_at.is_some())
    })
    .await
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

async fn a_run_of_pure_steps_costs_five_statements(backend: Backend) {
    let Some((app, statements)) = spawn_app_logging(backend, RUN_TABLES).await else {
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
        statements.count(counted);
        let run_id = call_hook(&app, &hook, &secret, customer).await;
        let run = ended(&observer, &run_id).await;
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
            .filter(step_run::Column::RunId.eq(run.id))
            .all(&observer)
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

/// A step with a side effect is recorded before the effect leaves and finished after it: the
/// pure step before it rides in the first save, and the started record comes back from its own
/// insert (found as it was, if a job before this one wrote it): three statements on step
/// records for the two steps, no read.
async fn a_send_steps_record_is_never_read_back(backend: Backend) {
    let Some((app, statements)) = spawn_app_logging(backend, &["step_run"]).await else {
        return;
    };
    let sender = app.sandbox_sender("+14155550199").await;
    app.customer_writes(&sender, "+14155550123", "Hello").await;
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "note", "type": "set_variables", "values": {"a": 1}},
            {"id": "tell", "type": "send_text", "senderId": sender, "to": "+14155550123",
             "text": "once"}]}),
    )
    .await;
    // Read apart from the server's own connection, which counts.
    let observer = db::connect(&app.database.url()).await.unwrap();
    statements.count(true);
    let run_id = crate::flows::run_flow(&app, &flow, json!({})).await;
    let run = ended(&observer, &run_id).await;
    let seen = statements.take();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let verbs = waflow_tests::verbs(&seen);
    assert_eq!(verbs, ["INSERT", "INSERT", "UPDATE"], "{seen:#?}");
}

#[tokio::test]
async fn a_send_steps_record_is_never_read_back_on_sqlite() {
    a_send_steps_record_is_never_read_back(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_send_steps_record_is_never_read_back_on_postgres() {
    a_send_steps_record_is_never_read_back(Backend::Postgres).await;
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

/// The lookups of a key's runs (is an earlier run unfinished, when a run is inserted and when
/// it is taken; which queued run is next, when one ends) read only the key's runs in one
/// status, whatever the plan: each is an index condition on the key and the status, so that
/// neither a customer's history nor a flow's backlog of other customers' runs is read. Read
/// off PostgreSQL's generic plans (the ones prepared statements end up with) of the statements
/// the server sent, on a young table (never analyzed, as in a new deployment's first minute)
/// with a backlog of 2,000 queued runs of the flow, each another customer's. There the planner
/// has no statistics, and with the key's index on `(concurrency_key, status, id)` it took the
/// index on `(flow_id, status)` or `(status, wake_at)` instead, reading the flow's whole
/// backlog or every running run per lookup (2,865 runs filtered per insert in `bench runs`).
/// Each is an index scan, which stops at the first match: with the key and the status as one
/// expression, the planner chose bitmap scans, which read all of a key's queued runs first.
#[tokio::test]
async fn a_keys_lookups_read_only_its_runs() {
    let Some((app, statements)) = spawn_app_logging(Backend::Postgres, RUN_TABLES).await else {
        return;
    };
    let (hook, secret) = keyed_flow(&app).await;
    statements.count(true);
    let run_id = Uuid::parse_str(&call_hook(&app, &hook, &secret, "ada").await).unwrap();
    let db = &app.services.db;
    eventually("the run's end", || async move {
        let run = flow_run::Entity::find_by_id(run_id).one(db).await.unwrap();
        run.filter(|r| r.finished_at.is_some())
    })
    .await;
    let seen = statements.take();
    let statement = |what: &str, is: &dyn Fn(&str) -> bool| {
        seen.iter()
            .find(|sql| is(sql))
            .unwrap_or_else(|| panic!("the statement that {what} in {seen:#?}"))
            .clone()
    };
    let lookups = [
        statement("inserts a run", &|sql| {
            sql.starts_with("INSERT INTO \"flow_run\"") && sql.contains("AS waits")
        }),
        statement("takes a run", &|sql| {
            sql.starts_with("UPDATE flow_run SET locked_until") && sql.contains("id = $4")
        }),
        statement("takes the next run of the key", &|sql| {
            sql.starts_with("UPDATE flow_run SET locked_until") && sql.contains("queued")
        }),
    ];
    let observer = sea_orm::Database::connect(app.database.url())
        .await
        .unwrap();
    let session = observer.begin().await.unwrap();
    for setting in [
        "SET LOCAL plan_cache_mode = force_generic_plan",
        "SET LOCAL enable_seqscan = off",
    ] {
        session.execute_unprepared(setting).await.unwrap();
    }
    // Planned on the young table as it is (one run: plans are made in the first seconds and
    // kept), then with a backlog of other customers' runs.
    for backlog in [0, 2_000] {
        session
            .execute_unprepared(&format!(
                "INSERT INTO flow_run (id, workspace_id, flow_id, flow_version_id, status,
                     trigger_type, trigger_payload, state, concurrency_key, created_at, updated_at)
                 SELECT gen_random_uuid(), workspace_id, flow_id, flow_version_id, 'QUEUED',
                     trigger_type, trigger_payload, state, 'customer-' || gen_random_uuid(),
                     now(), now()
                 FROM flow_run, generate_series(1, {backlog}) WHERE id = '{run_id}'"
            ))
            .await
            .unwrap();
        for (i, sql) in lookups.iter().enumerate() {
            let plan = generic_plan(&session, &format!("lookup_{backlog}_{i}"), sql).await;
            assert_reads_only_the_keys_runs(&plan, sql);
        }
    }
    session.rollback().await.unwrap();
}

/// Every scan of a key's runs in `plan` (the plan of `sql`) is an index scan, which stops at
/// the first match, on a condition on the key and the status.
fn assert_reads_only_the_keys_runs(plan: &Value, sql: &str) {
    let mut scans = Vec::new();
    key_scans(plan, &mut scans);
    assert!(!scans.is_empty(), "no lookup of a key's runs in {plan:#}");
    for scan in &scans {
        assert_eq!(
            scan["Node Type"], "Index Scan",
            "a key's runs are looked up by a scan that cannot stop at the first match (a \
             bitmap scan reads all of a key's queued runs first): {scan:#}\nin {sql}"
        );
        let condition = scan["Index Cond"].as_str().unwrap_or_default();
        assert!(
            condition.contains("concurrency_key") && condition.contains("status"),
            "a key's runs are looked up by {condition:?}, reading runs of other keys: \
             {scan:#}\nin {sql}"
        );
    }
}

/// The generic plan of `sql`, prepared as `name` (parameter types inferred), as JSON.
async fn generic_plan(session: &impl ConnectionTrait, name: &str, sql: &str) -> Value {
    session
        .execute_unprepared(&format!("PREPARE {name} AS {sql}"))
        .await
        .unwrap();
    let parameters = (1..)
        .take_while(|n| sql.contains(&format!("${n}")))
        .map(|_| "NULL")
        .collect::<Vec<_>>()
        .join(", ");
    session
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("EXPLAIN (FORMAT JSON) EXECUTE {name} ({parameters})"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<Value>(0)
        .unwrap()
}

/// The plan nodes that scan a key's runs (`flow_run AS earlier` or `AS queued`).
fn key_scans<'a>(node: &'a Value, found: &mut Vec<&'a Value>) {
    match node {
        Value::Array(items) => items.iter().for_each(|item| key_scans(item, found)),
        Value::Object(fields) => {
            if matches!(
                fields.get("Alias").and_then(Value::as_str),
                Some("earlier" | "queued")
            ) {
                found.push(node);
            }
            fields.values().for_each(|value| key_scans(value, found));
        }
        _ => {}
    }
}
