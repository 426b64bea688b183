//! Flows through the API: definitions validated with paths, versions, runs with their step
//! records, retries, onError, cancel, retry from the failed step, replies (concurrency keys: `concurrency_keys`).

use std::time::Duration;

use serde_json::{Value, json};
use waflow_jobs::queue_stats::{RUN_BACKLOG_SAMPLE_INTERVAL, RunBacklog};
use waflow_tests::{
    ACCESS_TOKEN, APP_SECRET, BUSINESS_ACCOUNT_ID, Backend, Meta, TestApp, VERIFY_TOKEN,
    WebhookReceiver, error_code, error_fields, eventually, messages_webhook,
    spawn_app_without_workers_with,
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

pub const RUN: &str = "query($id: ID!) { flowRun(id: $id) { id status error triggerType trigger vars version \
    concurrencyKey startedAt finishedAt steps { stepId type status attempt iteration input output error } } }";
const CUSTOMER: &str = "+14155550123";

/// Creates, publishes and enables a flow; returns its id and webhook secret.
pub async fn live_flow(app: &TestApp, definition: Value) -> (String, String) {
    let data = app
        .ok(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id webhookSecret } }",
            json!({"input": {"name": "Flow", "definition": definition}}),
        )
        .await;
    let id = data["createFlow"]["id"].as_str().unwrap().to_owned();
    let secret = data["createFlow"]["webhookSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        "mutation($id: ID!) { publishFlow(id: $id) { id } setFlowEnabled(id: $id, enabled: true) { enabled } }",
        json!({"id": id}),
    )
    .await;
    (id, secret)
}

pub async fn run(app: &TestApp, run_id: &str) -> Value {
    app.ok(RUN, json!({"id": run_id})).await["flowRun"].clone()
}

/// Waits until the run is in `status`; returns it.
pub async fn run_in(app: &TestApp, run_id: &str, status: &str) -> Value {
    eventually(&format!("run {run_id} to be {status}"), || async {
        let r = run(app, run_id).await;
        assert!(
            r["status"] == status
                || !["SUCCEEDED", "FAILED", "CANCELLED"].contains(&r["status"].as_str().unwrap()),
            "the run ended {} instead of {status}: {r}",
            r["status"]
        );
        (r["status"] == status).then_some(r)
    })
    .await
}

pub async fn run_flow(app: &TestApp, flow: &str, payload: Value) -> String {
    app.ok(
        "mutation($id: ID!, $p: JSON!) { runFlow(id: $id, payload: $p) { id } }",
        json!({"id": flow, "p": payload}),
    )
    .await["runFlow"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn step_ids(run: &Value) -> Vec<(String, String, i64)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stepId"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                s["attempt"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn definitions_are_validated_with_paths(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    app.approved_template(&sender, "order_confirmed", "UTILITY", "Hi {{1}}")
        .await;
    let create = "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }";
    let bad = json!({
    "trigger": {"type": "message_received", "senderId": uuid::Uuid::now_v7(), "match": {"regex": "("}},
    "steps": [
        {"id": "greet", "type": "send_sms", "to": "x"},
        {"id": "route", "type": "branch", "branches": [{"when": "trigger.message ==", "steps": [
            {"id": "confirm", "type": "send_template", "senderId": sender, "template": "missing_one",
             "language": "en", "to": "{{ trigger.customer_phone }}"},
            {"id": "greet", "type": "stop"}]}]},
        {"id": "each", "type": "loop", "steps": []},
        {"id": "wait", "type": "delay"},
        {"id": "call", "type": "http_request", "url": "{{ broken", "method": "FETCH"},
    ]});
    let refused = app
        .gql(create, json!({"input": {"name": "Bad", "definition": bad}}))
        .await;
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"));
    let mut fields = error_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "steps[0]",
            "steps[1].branches[0].steps[1].id",
            "steps[2].items",
        ],
        "{refused}"
    );
    // With the shape right, the checks that need the workspace and the expressions run.
    let shaped = json!({
    "trigger": {"type": "message_received", "senderId": uuid::Uuid::now_v7(), "match": {"regex": "("}},
    "steps": [
        {"id": "route", "type": "branch", "branches": [{"when": "trigger.message ==", "steps": [
            {"id": "confirm", "type": "send_template", "senderId": sender, "template": "missing_one",
             "language": "en", "to": "{{ trigger.customer_phone }}"}]}]},
        {"id": "call", "type": "http_request", "url": "{{ broken", "method": "FETCH"},
        {"id": "wait", "type": "delay"},
    ]});
    let refused = app
        .gql(
            create,
            json!({"input": {"name": "Bad", "definition": shaped}}),
        )
        .await;
    let mut fields = error_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "steps[0].branches[0].steps[0].template",
            "steps[0].branches[0].when",
            "steps[1].method",
            "steps[1].url",
            "steps[2]",
            "trigger.match.regex",
            "trigger.senderId",
        ],
        "{refused}"
    );
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("no approved template \"missing_one\" (en) for sender +14155550199"),
        "{message}"
    );

    // A valid draft; publishing freezes it; editing the draft leaves the version alone.
    let good = json!({"trigger": {"type": "manual"}, "steps": [
        {"id": "note", "type": "set_variables", "values": {"greeting": "Hello {{ trigger.name }}"}}]});
    let (flow, _) = live_flow(&app, good.clone()).await;
    let mut edited = good.clone();
    edited["steps"][0]["values"]["greeting"] = json!("Bye {{ trigger.name }}");
    app.ok(
        "mutation($id: ID!, $d: JSON!) { updateFlow(id: $id, input: {definition: $d}) { id } }",
        json!({"id": flow, "d": edited}),
    )
    .await;
    let data = app
        .ok(
            "query($id: ID!) { flow(id: $id) { draft enabled publishedVersion { version definition } versions { version } } }",
            json!({"id": flow}),
        )
        .await;
    assert_eq!(data["flow"]["publishedVersion"]["version"], 1);
    assert_eq!(data["flow"]["publishedVersion"]["definition"], good);
    assert_eq!(data["flow"]["draft"], edited);
    let first = run_flow(&app, &flow, json!({"name": "Ada"})).await;
    let done = run_in(&app, &first, "SUCCEEDED").await;
    assert_eq!(done["vars"], json!({"greeting": "Hello Ada"}));
    assert_eq!(done["version"], 1);
    app.ok(
        "mutation($id: ID!) { publishFlow(id: $id) { id } }",
        json!({"id": flow}),
    )
    .await;
    let second = run_flow(&app, &flow, json!({"name": "Ada"})).await;
    let done = run_in(&app, &second, "SUCCEEDED").await;
    assert_eq!(done["vars"], json!({"greeting": "Bye Ada"}));
    assert_eq!(done["version"], 2);

    // A missing value fails the step instead of rendering empty.
    let missing = run_flow(&app, &flow, json!({})).await;
    let failed = run_in(&app, &missing, "FAILED").await;
    assert!(
        failed["error"].as_str().unwrap().starts_with("step note: "),
        "{failed}"
    );

    // Unpublished flows cannot be enabled or run.
    let draft = app
        .ok(
            create,
            json!({"input": {"name": "Draft", "definition": good}}),
        )
        .await["createFlow"]["id"]
        .clone();
    let enable = app
        .gql(
            "mutation($id: ID!) { setFlowEnabled(id: $id, enabled: true) { id } }",
            json!({"id": draft}),
        )
        .await;
    assert_eq!(error_code(&enable), Some("VALIDATION_FAILED"));
    let run = app
        .gql(
            "mutation($id: ID!) { runFlow(id: $id, payload: {}) { id } }",
            json!({"id": draft}),
        )
        .await;
    assert_eq!(error_code(&run), Some("VALIDATION_FAILED"));
    // Another workspace sees none of it.
    let other = app.other_workspace().await;
    let foreign = app
        .gql_as(
            Some(&other),
            "query($id: ID!) { flow(id: $id) { id } }",
            json!({"id": flow}),
        )
        .await;
    assert_eq!(error_code(&foreign), Some("NOT_FOUND"));
}

/// Meta's stand-in answers the first send with 500, every later one with a fresh id.
async fn meta_fails_once(meta: &Meta, pn: &str) {
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{pn}/messages")))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "Service unavailable", "code": 2}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&meta.server)
        .await;
    meta_accepts(meta, pn).await;
}

async fn meta_accepts(meta: &Meta, pn: &str) {
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{pn}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "contacts": [{"input": "14155550123", "wa_id": "14155550123"}],
            "messages": [{"id": format!("wamid.FLOW-{}", uuid::Uuid::now_v7().simple())}]})))
        .with_priority(2)
        .mount(&meta.server)
        .await;
}

/// The customer writes to the Cloud API sender, which opens the 24-hour window.
async fn customer_writes_via_meta(app: &TestApp, pn: &str, id: &str) {
    let inbound = messages_webhook(
        pn,
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "14155550123"}],
               "messages": [{"from": "14155550123", "id": id, "timestamp": chrono::Utc::now().timestamp().to_string(),
                             "type": "text", "text": {"body": "hello"}}]}),
    );
    assert_eq!(app.webhook(&inbound, Some(APP_SECRET)).await, 200);
}

async fn a_failed_send_is_retried_then_the_run_fails_and_can_be_retried(app: TestApp) {
    const PN: &str = "PN-FLOW-1";
    let meta = Meta::start().await;
    meta_fails_once(&meta, PN).await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    customer_writes_via_meta(&app, PN, "wamid.IN-FLOW-1").await;
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "note", "type": "set_variables", "values": {"n": 1}},
            {"id": "tell", "type": "send_text", "senderId": sender, "to": "{{ trigger.phone }}",
             "text": "Your order shipped", "retry": {"maxAttempts": 2, "backoffSeconds": 1}}]}),
    )
    .await;
    let first = run_flow(&app, &flow, json!({"phone": CUSTOMER})).await;
    let done = run_in(&app, &first, "SUCCEEDED").await;
    assert_eq!(
        step_ids(&done),
        [
            ("note".into(), "SUCCEEDED".into(), 1),
            ("tell".into(), "FAILED".into(), 1),
            ("tell".into(), "SUCCEEDED".into(), 2),
        ]
    );
    assert!(
        done["steps"][1]["error"]
            .as_str()
            .unwrap()
            .starts_with("PROVIDER_ERROR")
    );
    assert_eq!(
        meta.requests("POST", &format!("/{PN}/messages"))
            .await
            .len(),
        2
    );

    // A provider that keeps failing: both attempts fail, the run fails and says so.
    let receiver = WebhookReceiver::register(&app, json!(["FLOW_RUN_FAILED"])).await;
    meta.server.reset().await;
    meta.number_is_connected(PN, "GREEN").await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "Service unavailable", "code": 2}})),
        )
        .mount(&meta.server)
        .await;
    let second = run_flow(&app, &flow, json!({"phone": CUSTOMER})).await;
    let failed = run_in(&app, &second, "FAILED").await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("step tell: PROVIDER_ERROR"),
        "{failed}"
    );
    let notified = receiver.first_delivery("the flow_run.failed webhook").await;
    assert_eq!(notified["event"], "flow_run.failed");
    assert_eq!(notified["run_id"], second.as_str());
    assert_eq!(notified["step_id"], "tell");

    // Meta recovers: retrying from the failed step sends once and does not redo `note`.
    meta.server.reset().await;
    meta.number_is_connected(PN, "GREEN").await;
    meta_accepts(&meta, PN).await;
    app.ok(
        "mutation($id: ID!) { retryFlowRun(id: $id, fromFailedStep: true) { status } }",
        json!({"id": second}),
    )
    .await;
    let retried = run_in(&app, &second, "SUCCEEDED").await;
    let steps = step_ids(&retried);
    assert_eq!(steps.iter().filter(|(id, _, _)| id == "note").count(), 1);
    assert_eq!(
        steps.last().unwrap(),
        &("tell".to_owned(), "SUCCEEDED".to_owned(), 3)
    );
    assert_eq!(
        meta.requests("POST", &format!("/{PN}/messages"))
            .await
            .len(),
        1
    );
    let retry_again = app
        .gql(
            "mutation($id: ID!) { retryFlowRun(id: $id) { status } }",
            json!({"id": second}),
        )
        .await;
    assert_eq!(error_code(&retry_again), Some("VALIDATION_FAILED"));
}

async fn on_error_continue_and_cancel(app: TestApp) {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/missing"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&crm)
        .await;
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "lookup", "type": "http_request", "url": format!("{}/missing", crm.uri()), "onError": "continue"},
            {"id": "note", "type": "set_variables", "values": {"lookup_failed": "{{ steps.lookup.error is defined }}"}},
            {"id": "wait", "type": "delay", "seconds": 60},
            {"id": "after", "type": "set_variables", "values": {"reached": true}}]}),
    )
    .await;
    let id = run_flow(&app, &flow, json!({})).await;
    let waiting = run_in(&app, &id, "WAITING").await;
    assert_eq!(waiting["vars"], json!({"lookup_failed": true}));
    assert_eq!(waiting["steps"][0]["status"], "FAILED");
    assert!(
        waiting["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("404")
    );
    let cancelled = app
        .ok(
            "mutation($id: ID!) { cancelFlowRun(id: $id) { status finishedAt } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(cancelled["cancelFlowRun"]["status"], "CANCELLED");
    let again = app
        .gql(
            "mutation($id: ID!) { cancelFlowRun(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&again), Some("VALIDATION_FAILED"));
    let after = run(&app, &id).await;
    assert!(step_ids(&after).iter().all(|(step, _, _)| step != "after"));
}

async fn a_message_starts_a_run_that_waits_for_the_reply(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "message_received", "senderId": sender, "match": {"contains": "price"}},
            "steps": [
                {"id": "ask", "type": "send_text", "senderId": sender, "to": "{{ trigger.customer_phone }}",
                 "text": "Hi {{ trigger.customer_name }}, which size?"},
                {"id": "size", "type": "wait_for_reply", "timeoutSeconds": 60},
                {"id": "answer", "type": "send_text", "senderId": sender, "to": "{{ trigger.customer_phone }}",
                 "text": "Size {{ steps.size.message.message }} costs 10 EUR."}]}),
    )
    .await;
    let first = app.customer_writes(&sender, CUSTOMER, "Hello there").await;
    let conversation = first["conversation"]["id"].as_str().unwrap().to_owned();
    app.customer_writes(&sender, CUSTOMER, "What's the PRICE?")
        .await;
    let runs = eventually("a run for the matching message", || async {
        let data = app
            .ok(
                "query($f: ID!) { flowRuns(flowId: $f) { edges { node { id status trigger } } } }",
                json!({"f": flow}),
            )
            .await;
        let runs = data["flowRuns"]["edges"].as_array().unwrap().clone();
        (!runs.is_empty()).then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), 1, "only the matching message starts a run");
    let run_id = runs[0]["node"]["id"].as_str().unwrap().to_owned();
    assert_eq!(runs[0]["node"]["trigger"]["message"], "What's the PRICE?");
    assert_eq!(runs[0]["node"]["trigger"]["customer_name"], "Ana");
    run_in(&app, &run_id, "WAITING").await;
    app.customer_writes(&sender, CUSTOMER, "M").await;
    run_in(&app, &run_id, "SUCCEEDED").await;
    let bodies: Vec<String> = app
        .conversation_messages(&conversation)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        bodies,
        [
            "Hello there",
            "What's the PRICE?",
            "Hi Ana, which size?",
            "M",
            "Size M costs 10 EUR."
        ]
    );

    // Nobody answers: the wait times out and says so.
    let (quiet, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "size", "type": "wait_for_reply", "timeoutSeconds": 1, "senderId": sender, "phone": "+14155550999"},
            {"id": "note", "type": "set_variables", "values": {"timed_out": "{{ steps.size.timed_out }}"}}]}),
    )
    .await;
    let id = run_flow(&app, &quiet, json!({})).await;
    let done = run_in(&app, &id, "SUCCEEDED").await;
    assert_eq!(done["vars"], json!({"timed_out": true}));
}

async fn failures_run_the_error_handler_and_stream_progress(app: TestApp) {
    let broken = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&broken)
        .await;
    let (handler, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "note", "type": "set_variables",
             "values": {"failed_step": "{{ trigger.step_id }}", "flow": "{{ trigger.flow_name }}"}}]}),
    )
    .await;
    let data = app
        .ok(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"input": {"name": "Sync", "onErrorFlowId": handler, "definition": {
                "trigger": {"type": "manual"}, "steps": [
                  {"id": "push", "type": "http_request", "method": "POST", "url": broken.uri(),
                   "body": {"a": 1}, "retry": {"maxAttempts": 1, "backoffSeconds": 0}}]}}}),
        )
        .await;
    let flow = data["createFlow"]["id"].as_str().unwrap().to_owned();
    app.ok(
        "mutation($id: ID!) { publishFlow(id: $id) { id } }",
        json!({"id": flow}),
    )
    .await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber
        .subscribe(
            "1",
            &format!("subscription {{ flowRunUpdated(flowId: \"{flow}\") {{ runId status stepId stepStatus error }} }}"),
        )
        .await;
    let run_id = run_flow(&app, &flow, json!({})).await;
    let mut seen = Vec::new();
    while let Some(event) = subscriber.next_event(Duration::from_secs(10)).await {
        let update = event["flowRunUpdated"].clone();
        assert_eq!(update["runId"], run_id.as_str());
        let status = update["status"].as_str().unwrap().to_owned();
        seen.push((
            status.clone(),
            update["stepId"].as_str().map(str::to_owned),
            update["stepStatus"].as_str().map(str::to_owned),
        ));
        if status == "FAILED" && update["stepId"].is_null() {
            assert!(update["error"].as_str().unwrap().contains("503"));
            break;
        }
    }
    assert_eq!(seen.first().unwrap().0, "QUEUED");
    assert!(
        seen.contains(&(
            "RUNNING".into(),
            Some("push".into()),
            Some("RUNNING".into())
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("RUNNING".into(), Some("push".into()), Some("FAILED".into()))),
        "{seen:?}"
    );
    assert_eq!(seen.last().unwrap().0, "FAILED");

    let handled = eventually("the error handler's run", || async {
        let data = app
            .ok(
                "query($f: ID!) { flowRuns(flowId: $f) { edges { node { id status triggerType vars } } } }",
                json!({"f": handler}),
            )
            .await;
        let node = data["flowRuns"]["edges"][0]["node"].clone();
        (node["status"] == "SUCCEEDED").then_some(node)
    })
    .await;
    assert_eq!(handled["triggerType"], "flow_failed");
    assert_eq!(
        handled["vars"],
        json!({"failed_step": "push", "flow": "Sync"})
    );
}

async fn a_red_sender_pauses_flows_sending_its_marketing_templates(app: TestApp) {
    const PN: &str = "PN-FLOW-RED";
    let meta = Meta::start().await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    Mock::given(method("GET"))
        .and(path(format!("/v21.0/{PN}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"quality_rating": "RED", "status": "CONNECTED"})),
        )
        .with_priority(1)
        .mount(&meta.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v21.0/WABA-1/message_templates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"name": "promo", "language": "en", "status": "APPROVED", "category": "MARKETING", "id": "9",
             "components": [{"type": "BODY", "text": "Sale!"}]},
            {"name": "receipt", "language": "en", "status": "APPROVED", "category": "UTILITY", "id": "10",
             "components": [{"type": "BODY", "text": "Your receipt"}]}]})))
        .mount(&meta.server)
        .await;
    app.ok(
        "mutation($id: ID!) { syncTemplates(senderId: $id) { created } }",
        json!({"id": sender}),
    )
    .await;
    let sending = |template: &str| {
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "send", "type": "send_template", "senderId": sender, "template": template,
             "language": "en", "to": "{{ trigger.phone }}"}]})
    };
    let (promo, _) = live_flow(&app, sending("promo")).await;
    let (receipt, _) = live_flow(&app, sending("receipt")).await;
    let receiver = WebhookReceiver::register(&app, json!(["FLOW_PAUSED"])).await;
    let flagged = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA-1", "time": 1748454394, "changes": [{
        "field": "phone_number_quality_update",
        "value": {"display_phone_number": "14155550199", "event": "FLAGGED", "current_limit": "TIER_250"}}]}]});
    assert_eq!(app.webhook(&flagged, Some(APP_SECRET)).await, 200);
    let state = |id: String| {
        let app = &app;
        async move {
            app.ok(
                "query($id: ID!) { flow(id: $id) { enabled pausedReason } }",
                json!({"id": id}),
            )
            .await["flow"]
                .clone()
        }
    };
    let paused = eventually("the marketing flow to pause", || async {
        let flow = state(promo.clone()).await;
        (flow["enabled"] == false).then_some(flow)
    })
    .await;
    assert!(
        paused["pausedReason"]
            .as_str()
            .unwrap()
            .contains("+14155550199 has a RED quality rating")
    );
    assert_eq!(state(receipt.clone()).await["enabled"], true);
    let notified = receiver.first_delivery("the flow.paused webhook").await;
    assert_eq!(notified["event"], "flow.paused");
    assert_eq!(notified["flow_id"], promo.as_str());
}

async fn whatsapp_triggers_carry_snake_case_payloads(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    let note = |values: Value| json!([{"id": "note", "type": "set_variables", "values": values}]);
    let (started, _) = live_flow(
        &app,
        json!({"trigger": {"type": "conversation_started", "senderId": sender},
               "steps": note(json!({"first": "{{ trigger.first_message }}", "who": "{{ trigger.customer_name }}"}))}),
    )
    .await;
    let (ended, _) = live_flow(
        &app,
        json!({"trigger": {"type": "conversation_ended"},
               "steps": note(json!({"transcript": "{{ trigger.formatted_transcript }}", "reason": "{{ trigger.end_reason }}",
                                    "count": "{{ trigger.message_count }}"}))}),
    )
    .await;
    let written = app.customer_writes(&sender, CUSTOMER, "Hello!").await;
    let conversation = written["conversation"]["id"].as_str().unwrap().to_owned();
    app.ok(
        "mutation($id: ID!) { endConversation(id: $id) { id } }",
        json!({"id": conversation}),
    )
    .await;
    let vars_of = |flow: String| {
        let app = &app;
        async move {
            eventually("the flow's run", || async {
                let data = app
                    .ok(
                        "query($f: ID!) { flowRuns(flowId: $f) { edges { node { status vars } } } }",
                        json!({"f": flow}),
                    )
                    .await;
                let node = data["flowRuns"]["edges"][0]["node"].clone();
                (node["status"] == "SUCCEEDED").then(|| node["vars"].clone())
            })
            .await
        }
    };
    assert_eq!(
        vars_of(started).await,
        json!({"first": "Hello!", "who": "Ana"})
    );
    assert_eq!(
        vars_of(ended).await,
        json!({"transcript": "Customer: Hello!", "reason": "manual", "count": 1})
    );

    // Mistakes in triggers are refused when saved; an event needs a name.
    let create = "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }";
    let steps = note(json!({"a": 1}));
    for (trigger, field) in [
        (json!({"type": "schedule", "cron": "61 * * * *"}), "trigger"),
        (
            json!({"type": "schedule", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}),
            "trigger",
        ),
        (json!({"type": "event", "name": " "}), "trigger.name"),
        (json!({"type": "telepathy"}), "trigger"),
    ] {
        let refused = app
            .gql(create, json!({"input": {"name": "Bad", "definition": {"trigger": trigger, "steps": steps}}}))
            .await;
        assert_eq!(error_fields(&refused), [field], "{refused}");
    }
    let nameless = app
        .gql("mutation { emitEvent(name: \"\", payload: {}) }", json!({}))
        .await;
    assert_eq!(error_code(&nameless), Some("VALIDATION_FAILED"));
    // A webhook trigger only runs while its flow is enabled and its trigger is a webhook.
    let (manual, secret) =
        live_flow(&app, json!({"trigger": {"type": "manual"}, "steps": steps})).await;
    let answer = app
        .http
        .post(app.url(&format!("/hooks/flows/{manual}")))
        .bearer_auth(&secret)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    // A validation error is 400 on every REST endpoint (it was 409 here alone).
    assert_eq!(answer.status(), 400);
    let refused: Value = answer.json().await.unwrap();
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"), "{refused}");
    assert_eq!(error_fields(&refused), ["flowId"], "{refused}");
}

async fn delays_until_a_time_end_conversations_and_stop(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    let written = app.customer_writes(&sender, CUSTOMER, "Bye").await;
    let conversation = written["conversation"]["id"].as_str().unwrap().to_owned();
    let (flow, _) = live_flow(
        &app,
        json!({"trigger": {"type": "manual"}, "steps": [
            {"id": "until", "type": "delay", "until": "{{ trigger.at }}"},
            {"id": "close", "type": "end_conversation", "conversationId": "{{ trigger.conversation }}"},
            {"id": "again", "type": "end_conversation", "conversationId": "{{ trigger.conversation }}"},
            {"id": "check", "type": "branch", "branches": [
                {"when": "steps.again.already_ended", "steps": [{"id": "done", "type": "stop"}]}]},
            {"id": "never", "type": "set_variables", "values": {"reached": true}}]}),
    )
    .await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let id = run_flow(&app, &flow, json!({"at": at, "conversation": conversation})).await;
    run_in(&app, &id, "WAITING").await;
    let done = run_in(&app, &id, "SUCCEEDED").await;
    let finished =
        chrono::DateTime::parse_from_rfc3339(done["finishedAt"].as_str().unwrap()).unwrap();
    assert!(
        finished >= chrono::DateTime::parse_from_rfc3339(&at).unwrap(),
        "not before `until`"
    );
    let steps: Vec<&str> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stepId"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["until", "close", "again", "check", "done"]);
    assert_eq!(done["steps"][1]["output"]["already_ended"], false);
    assert_eq!(done["steps"][2]["output"]["already_ended"], true);
    assert_eq!(done["vars"], json!({}), "stop ends the run before `never`");
    let status = app
        .ok(
            "query($id: ID!) { conversation(id: $id) { status endReason } }",
            json!({"id": conversation}),
        )
        .await;
    assert_eq!(
        status["conversation"],
        json!({"status": "ENDED", "endReason": "MANUAL"})
    );

    // A time that is not one fails the delay at once.
    let bad = run_flow(
        &app,
        &flow,
        json!({"at": "tomorrow", "conversation": conversation}),
    )
    .await;
    let failed = run_in(&app, &bad, "FAILED").await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("is not an RFC 3339 time"),
        "{failed}"
    );
}

async fn webhook_secrets_rotate_and_error_handlers_are_checked(app: TestApp) {
    let steps = json!([{"id": "note", "type": "set_variables", "values": {"a": 1}}]);
    let (flow, secret) = live_flow(
        &app,
        json!({"trigger": {"type": "webhook"}, "steps": steps}),
    )
    .await;
    let hook = app.url(&format!("/hooks/flows/{flow}"));
    let answer = |secret: String, body: &'static str| {
        let app = &app;
        let hook = hook.clone();
        async move {
            let response = app
                .http
                .post(hook)
                .header("x-waflow-secret", secret)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let post = |secret: String, body: &'static str| {
        let answer = &answer;
        async move { answer(secret, body).await.0 }
    };
    let (status, not_json) = answer(secret.clone(), "{not json").await;
    assert_eq!(
        (status, error_code(&not_json)),
        (400, Some("VALIDATION_FAILED")),
        "{not_json}"
    );
    let (status, wrong) = answer("whfl_wrong".into(), "{}").await;
    assert_eq!(
        (status, error_code(&wrong)),
        (401, Some("UNAUTHENTICATED")),
        "{wrong}"
    );
    let malformed_id = app
        .http
        .post(app.url("/hooks/flows/not-an-id"))
        .header("x-waflow-secret", &secret)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed_id.status(), 404);
    let body: Value = malformed_id.json().await.unwrap();
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    // A chain of runs calling each other's webhooks stops: 508 Loop Detected.
    let looped = app
        .http
        .post(&hook)
        .header("x-waflow-secret", &secret)
        .header("x-waflow-hop", "5")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(looped.status(), 508);
    let body: Value = looped.json().await.unwrap();
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert_eq!(post(secret.clone(), "{}").await, 202);
    let rotated = app
        .ok(
            "mutation($id: ID!) { rotateFlowWebhookSecret(id: $id) { webhookSecret } }",
            json!({"id": flow}),
        )
        .await["rotateFlowWebhookSecret"]["webhookSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated, secret);
    assert_eq!(
        post(secret, "{}").await,
        401,
        "the old secret stops working"
    );
    assert_eq!(post(rotated, "{}").await, 202);
    let listed = app
        .ok(
            "query($id: ID!) { flow(id: $id) { webhookSecret } }",
            json!({"id": flow}),
        )
        .await;
    assert_eq!(listed["flow"]["webhookSecret"], Value::Null, "shown once");

    let update = "mutation($id: ID!, $h: ID) { updateFlow(id: $id, input: {onErrorFlowId: $h}) { onErrorFlowId } }";
    let itself = app.gql(update, json!({"id": flow, "h": flow})).await;
    assert_eq!(error_fields(&itself), ["onErrorFlowId"]);
    let unknown = app
        .gql(
            update,
            json!({"id": flow, "h": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    assert_eq!(error_fields(&unknown), ["onErrorFlowId"]);
}

/// Issue 20: accepting a webhook must still mean a run that starts soon. No worker runs here, so
/// the first run's job waits in the flow queue; once it has waited past the limit (1 s), the
/// flow webhook starts nothing and answers 503 `UNAVAILABLE` with `Retry-After`, while Meta's
/// webhook, whose messages would be lost, is still taken.
async fn flow_webhooks_are_refused_while_the_run_backlog_is_too_old(backend: Backend) {
    let limit = Duration::from_secs(1);
    let Some(app) = spawn_app_without_workers_with(backend, |services| {
        services.run_backlog = RunBacklog::new(services.jobs.flows.clone(), Some(limit));
    })
    .await
    else {
        return;
    };
    // A Cloud API sender for Meta's webhook. `cloud_sender` would wait for its status refresh,
    // a job that no worker runs here; receiving does not need it.
    let meta = Meta::start().await;
    const PN: &str = "PN-BACKLOG";
    app.ok(
        "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
        json!({"input": {"phoneNumber": "+14155550199", "displayName": "Acme", "provider": "CLOUD_API",
            "cloudApi": {"phoneNumberId": PN, "businessAccountId": BUSINESS_ACCOUNT_ID,
                "accessToken": ACCESS_TOKEN, "appSecret": APP_SECRET, "verifyToken": VERIFY_TOKEN,
                "apiBaseUrl": meta.base_url()}}}),
    )
    .await;
    let steps = json!([{"id": "note", "type": "set_variables", "values": {"a": 1}}]);
    let (flow, secret) = live_flow(
        &app,
        json!({"trigger": {"type": "webhook"}, "steps": steps}),
    )
    .await;
    let hook = app.url(&format!("/hooks/flows/{flow}"));
    let post = |secret: &str| {
        app.http
            .post(&hook)
            .header("x-waflow-secret", secret)
            .json(&json!({"lead": "Ana"}))
            .send()
    };
    assert_eq!(post(&secret).await.unwrap().status(), 202);

    eventually(
        "the flow queue's oldest job to wait past the limit",
        || async {
            let stats = app.services.jobs.stats().await.unwrap();
            let flows = stats.into_iter().find(|q| q.queue == "flows").unwrap();
            (flows.oldest_ready_age > limit).then_some(())
        },
    )
    .await;
    // The server reads the backlog again once its last reading is this old.
    tokio::time::sleep(RUN_BACKLOG_SAMPLE_INTERVAL + Duration::from_millis(50)).await;
    let refused = post(&secret).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_code(&body), Some("UNAVAILABLE"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], 1);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the flow queue is behind"),
        "{body}"
    );
    let runs = app
        .ok(
            "query($f: ID!) { flowRuns(flowId: $f, first: 10) { edges { node { id } } } }",
            json!({"f": flow}),
        )
        .await;
    assert_eq!(
        runs["flowRuns"]["edges"].as_array().unwrap().len(),
        1,
        "only the accepted request started a run: {runs}"
    );
    // The secret is checked first: a caller without it learns nothing about the queue.
    let wrong = post("whfl_wrong").await.unwrap();
    assert_eq!(wrong.status(), 401);
    // Meta's webhook is never refused for the backlog: Meta would give up on its messages.
    customer_writes_via_meta(&app, PN, "wamid.IN-BACKLOG-1").await;
}

waflow_tests::on_both_backends!(flow_webhooks_are_refused_while_the_run_backlog_is_too_old,);

waflow_tests::on_both_databases!(
    webhook_secrets_rotate_and_error_handlers_are_checked,
    delays_until_a_time_end_conversations_and_stop,
    whatsapp_triggers_carry_snake_case_payloads,
    failures_run_the_error_handler_and_stream_progress,
    a_red_sender_pauses_flows_sending_its_marketing_templates,
    definitions_are_validated_with_paths,
    a_failed_send_is_retried_then_the_run_fails_and_can_be_retried,
    on_error_continue_and_cancel,
    a_message_starts_a_run_that_waits_for_the_reply,
);
