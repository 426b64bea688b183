//! Templates and expressions that would hang the server or fill its memory run in the sandbox
//! and fail with the limit they broke, in a dry run and in a real run alike.

use std::time::Duration;

use serde_json::{Value, json};
use waflow_tests::{Backend, TestApp, spawn_app};

use super::Watch;
use crate::flows::{live_flow, run_flow, run_in};

const TEST_DEFINITION: &str = "query($d: JSON!, $p: JSON!) { testFlowDefinition(definition: $d, payload: $p) { \
    status error steps { stepId status error } } }";

/// Nested loops of 10^10 iterations: minutes of work for one template.
const NESTED_LOOPS: &str =
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";

fn set_variables(value: &str) -> Value {
    json!({"trigger": {"type": "manual"}, "steps": [
        {"id": "hostile", "type": "set_variables", "values": {"x": value}}]})
}

async fn dry_run(app: &TestApp, definition: Value) -> Value {
    app.gql(TEST_DEFINITION, json!({"d": definition, "p": {}}))
        .await
}

/// The hang, sent once per runtime thread and then some, dry and for real: each fails
/// with the limit on work, the server answers throughout, and the run is not retried.
async fn endless_loops_stop_at_the_limit_on_work(app: TestApp) {
    let watch = Watch::start(&app);
    let attacks = (0..4).map(|_| dry_run(&app, set_variables(NESTED_LOOPS)));
    for answer in futures::future::join_all(attacks).await {
        let trace = &answer["data"]["testFlowDefinition"];
        assert_eq!(trace["status"], "FAILED", "{answer}");
        let error = trace["error"].as_str().unwrap();
        assert!(error.contains("the limit on work"), "{error}");
    }
    let (flow, _) = live_flow(&app, set_variables(NESTED_LOOPS)).await;
    let run_id = run_flow(&app, &flow, json!({})).await;
    let run = run_in(&app, &run_id, "FAILED").await;
    assert!(
        run["error"].as_str().unwrap().contains("the limit on work"),
        "{run}"
    );
    let attempts: Vec<i64> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(
        attempts,
        [1],
        "a template that broke a limit is not retried"
    );
    watch.held_up("endless template loops").await;
}

/// The 800 MB answer: eight 100 MB strings in a loop. The output stops at its limit.
async fn huge_output_stops_at_the_limit_on_output(app: TestApp) {
    let watch = Watch::start(&app);
    let answer = dry_run(
        &app,
        set_variables("{% for i in range(8) %}{{ 'x' * 100000000 }}{% endfor %}"),
    )
    .await;
    let error = answer["data"]["testFlowDefinition"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("limit on output") || error.contains("limit on memory"),
        "{answer}"
    );
    assert!(answer.to_string().len() < 100_000, "the answer stays small");
    watch.held_up("a template of 800 MB").await;
}

/// minijinja folds constant expressions while compiling: saving a definition whose template
/// is a constant of gigabytes would fill the server's memory before anything runs. It is
/// refused, naming the field.
async fn templates_too_big_to_compile_are_refused(app: TestApp) {
    let watch = Watch::start(&app);
    let bomb = ["('x' * 100000000)"; 12].join(" ~ ");
    let definition = json!({"trigger": {"type": "manual"}, "steps": [
        {"id": "fine", "type": "set_variables", "values": {"a": "{{ 1 + 1 }}"}},
        {"id": "bomb", "type": "set_variables", "values": {"x": format!("{{{{ {bomb} }}}}")}}]});
    let answer = app
        .gql(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"input": {"name": "Bomb", "definition": definition}}),
        )
        .await;
    assert_eq!(
        waflow_tests::error_code(&answer),
        Some("VALIDATION_FAILED"),
        "{answer}"
    );
    assert_eq!(
        waflow_tests::error_fields(&answer),
        ["steps[1].values.x"],
        "{answer}"
    );
    let message = answer["errors"][0]["extensions"]["fields"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("limit on memory"), "{message}");
    watch
        .held_up("a template that is a constant of 1.2 GB")
        .await;
}

/// A template that allocates the most minijinja allows in one step, again and again, until
/// the time runs out.
async fn slow_templates_stop_at_the_limit_on_time(app: TestApp) {
    let watch = Watch::start(&app);
    // `i - i` keeps minijinja from folding the string into a constant once.
    let slow = "{% for i in range(100000) %}{% set y = 'x' * (50000000 + i - i) %}{% endfor %}";
    let started = std::time::Instant::now();
    let answer = dry_run(&app, set_variables(slow)).await;
    let error = answer["data"]["testFlowDefinition"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("limit on time"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
    watch.held_up("a slow template").await;
}

mod endless_loops_stop_at_the_limit_on_work {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = super::spawn_app(super::Backend::Sqlite).await.unwrap();
        super::endless_loops_stop_at_the_limit_on_work(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = super::spawn_app(super::Backend::Postgres).await {
            super::endless_loops_stop_at_the_limit_on_work(app).await;
        }
    }
}

/// One database is enough: these never reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output() {
    huge_output_stops_at_the_limit_on_output(spawn_app(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_big_to_compile() {
    templates_too_big_to_compile_are_refused(spawn_app(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_templates() {
    slow_templates_stop_at_the_limit_on_time(spawn_app(Backend::Sqlite).await.unwrap()).await;
}
