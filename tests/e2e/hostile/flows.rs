//! What one run may hold and set off: a loop's items, a step's output and the run's whole
//! state are bounded, an answer of 10 MB is read to 256 KiB, and a flow that calls its own
//! webhook stops after a chain of five runs instead of running a thousand.

use std::time::Duration;

use serde_json::{Value, json};
use waflow_tests::{Backend, TestApp, spawn_app};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::flows::{live_flow, run_flow, run_in};

const TEST_DEFINITION: &str = "query($d: JSON!, $p: JSON!) { testFlowDefinition(definition: $d, payload: $p, allowHttp: true) { \
    status error steps { stepId status output error } } }";

fn manual(steps: Value) -> Value {
    json!({"trigger": {"type": "manual"}, "steps": steps})
}

async fn failed_run(app: &TestApp, definition: Value) -> Value {
    let (flow, _) = live_flow(app, definition).await;
    let run_id = run_flow(app, &flow, json!({})).await;
    run_in(app, &run_id, "FAILED").await
}

async fn bounded_runs(app: TestApp) {
    // A loop of 1,001 items.
    let looped = manual(
        json!([{"id": "many", "type": "loop", "items": "range(1001) | list",
        "steps": [{"id": "each", "type": "set_variables", "values": {"i": "{{ loop.item }}"}}]}]),
    );
    let run = failed_run(&app, looped.clone()).await;
    assert!(
        run["error"].as_str().unwrap().contains("at most 1000"),
        "{run}"
    );
    let trace = app.ok(TEST_DEFINITION, json!({"d": looped, "p": {}})).await;
    let error = trace["testFlowDefinition"]["error"].as_str().unwrap();
    assert!(error.contains("at most 1000"), "{error}");

    // Outputs of 200 KiB each, until the run would hold over 1 MiB.
    let steps: Vec<Value> = (0..6)
        .map(|i| {
            json!({"id": format!("s{i}"), "type": "set_variables",
            "values": {format!("v{i}"): "{{ 'x' * 100000 }}"}})
        })
        .collect();
    let run = failed_run(&app, manual(json!(steps))).await;
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("a run holds at most 1024 KiB"),
        "{run}"
    );
}

waflow_tests::on_both_databases!(bounded_runs);

/// The 1 GB answer, at a hundredth of the size: read to 200 KiB, the rest left unread.
#[tokio::test]
async fn a_huge_answer_is_read_to_its_limit() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("y".repeat(10 << 20)))
        .mount(&server)
        .await;
    let definition = manual(json!([{"id": "fetch", "type": "http_request",
        "url": format!("{}/big", server.uri())}]));
    let trace = app
        .ok(TEST_DEFINITION, json!({"d": definition, "p": {}}))
        .await;
    let output = &trace["testFlowDefinition"]["steps"][0]["output"];
    assert_eq!(output["truncated"], true, "{trace}");
    assert_eq!(output["body"].as_str().unwrap().len(), 200 * 1024);
}

/// The flow that calls its own webhook ran 1,163 runs in 20 s. The chain stops at five:
/// the sixth call is refused with 508, which fails the fifth run.
#[tokio::test]
async fn a_flow_calling_its_own_webhook_stops() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let (flow, secret) = live_flow(
        &app,
        json!({"trigger": {"type": "webhook"}, "steps": [{"id": "note", "type": "stop"}]}),
    )
    .await;
    let hook = app.url(&format!("/hooks/flows/{flow}"));
    let itself = json!({"trigger": {"type": "webhook"}, "steps": [
        // A step may try to reset the count: it is not its to set.
        {"id": "again", "type": "http_request", "method": "POST", "url": hook,
         "headers": {"X-Waflow-Secret": secret, "X-Waflow-Hop": "0"}, "body": {"again": true}}]});
    app.ok(
        "mutation($id: ID!, $d: JSON!) { updateFlow(id: $id, input: {definition: $d}) { id } publishFlow(id: $id) { id } }",
        json!({"id": flow, "d": itself}),
    )
    .await;
    let first = app
        .http
        .post(&hook)
        .header("x-waflow-secret", &secret)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runs = app
        .ok(
            "query($f: ID!) { flowRuns(flowId: $f, first: 50) { edges { node { status error } } } }",
            json!({"f": flow}),
        )
        .await;
    let runs = runs["flowRuns"]["edges"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 5, "{runs:?}");
    let failed: Vec<&Value> = runs
        .iter()
        .filter(|r| r["node"]["status"] == "FAILED")
        .collect();
    assert_eq!(failed.len(), 1, "{runs:?}");
    assert!(
        failed[0]["node"]["error"].as_str().unwrap().contains("508"),
        "{runs:?}"
    );
}
