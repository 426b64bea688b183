//! `testFlow` and `testFlowDefinition`: the trace of what a run would do, with nothing sent,
//! called or stored.

use serde_json::json;
use waflow_tests::{TestApp, error_code};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

const TEST: &str = "query($id: ID!, $p: JSON!, $http: Boolean) { testFlow(id: $id, payload: $p, allowHttp: $http) { \
    status error steps { stepId type path iteration status input output error } } }";
const TEST_DEFINITION: &str = "query($d: JSON!, $p: JSON!) { testFlowDefinition(definition: $d, payload: $p) { \
    status error steps { stepId path status error } } }";

async fn a_dry_run_shows_the_way_and_sends_nothing(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    app.approved_template(&sender, "call_thanks", "UTILITY", "Thanks, {{1}}!")
        .await;
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/stock"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": ["lamp", "desk"]})))
        .mount(&crm)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&crm)
        .await;
    let definition = json!({"trigger": {"type": "manual"}, "steps": [
        {"id": "wait", "type": "delay", "seconds": 3600},
        {"id": "route", "type": "branch",
         "branches": [{"when": "trigger.outcome == 'answered'", "steps": [
            {"id": "thanks", "type": "send_template", "senderId": sender, "template": "call_thanks",
             "language": "en", "to": "{{ trigger.phone }}", "variables": ["{{ trigger.name }}"]}]}],
         "else": [{"id": "missed", "type": "send_text", "senderId": sender, "to": "{{ trigger.phone }}", "text": "Sorry"}]},
        {"id": "stock", "type": "http_request", "url": format!("{}/stock", crm.uri())},
        {"id": "each", "type": "loop", "items": "['a', 'b']", "steps": [
            {"id": "tell", "type": "send_text", "senderId": sender, "to": "{{ trigger.phone }}", "text": "Item {{ loop.item }}"}]},
        {"id": "log", "type": "http_request", "method": "POST", "url": format!("{}/log", crm.uri()), "body": {"n": 1}}]});
    let flow = app
        .ok(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"input": {"name": "Dry", "definition": definition}}),
        )
        .await["createFlow"]["id"]
        .clone();
    let payload = json!({"outcome": "answered", "name": "Ada", "phone": "+14155550123"});
    let trace = app
        .ok(TEST, json!({"id": flow, "p": payload, "http": false}))
        .await["testFlow"]
        .clone();
    assert_eq!(trace["status"], "SUCCEEDED", "{trace}");
    let steps: Vec<(&str, &str, &str)> = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stepId"].as_str().unwrap(),
                s["path"].as_str().unwrap(),
                s["iteration"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("wait", "steps[0]", ""),
            ("route", "steps[1]", ""),
            ("thanks", "steps[1].branches[0].steps[0]", ""),
            ("stock", "steps[2]", ""),
            ("each", "steps[3]", ""),
            ("tell", "steps[3].steps[0]", "0"),
            ("tell", "steps[3].steps[0]", "1"),
            ("log", "steps[4]", ""),
        ]
    );
    assert_eq!(trace["steps"][1]["output"], json!({"branch": 0}));
    assert_eq!(trace["steps"][2]["input"]["to"], "+14155550123");
    assert_eq!(trace["steps"][2]["input"]["variables"], json!(["Ada"]));
    assert_eq!(trace["steps"][2]["output"]["sent"], false);
    assert_eq!(trace["steps"][6]["input"]["text"], "Item b");
    assert_eq!(trace["steps"][3]["output"]["performed"], false);

    // Nothing happened: no message, no call, no run.
    let conversations = app
        .ok(
            "{ conversations(first: 5) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(conversations["conversations"]["edges"], json!([]));
    assert!(crm.received_requests().await.unwrap().is_empty());
    let runs = app
        .ok(
            "{ flowRuns(first: 5) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(runs["flowRuns"]["edges"], json!([]));

    // allowHttp performs the GET (only): its answer feeds later steps.
    let trace = app
        .ok(
            TEST,
            json!({"id": flow, "p": {"outcome": "no", "phone": "+14155550123"}, "http": true}),
        )
        .await["testFlow"]
        .clone();
    assert_eq!(trace["steps"][2]["stepId"], "missed");
    assert_eq!(
        trace["steps"][3]["output"]["body"],
        json!({"items": ["lamp", "desk"]})
    );
    let calls: Vec<String> = crm
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert_eq!(calls, ["GET /stock"]);
}

async fn a_dry_run_reports_the_first_error_with_its_path(app: TestApp) {
    let definition = json!({"trigger": {"type": "manual"}, "steps": [
        {"id": "note", "type": "set_variables", "values": {"a": 1}},
        {"id": "check", "type": "branch", "branches": [{"when": "true", "steps": [
            {"id": "greet", "type": "set_variables", "values": {"hello": "Hi {{ trigger.name }}"}}]}]},
        {"id": "never", "type": "stop"}]});
    let trace = app
        .ok(TEST_DEFINITION, json!({"d": definition, "p": {}}))
        .await["testFlowDefinition"]
        .clone();
    assert_eq!(trace["status"], "FAILED");
    assert!(
        trace["error"]
            .as_str()
            .unwrap()
            .starts_with("steps[1].branches[0].steps[0] (greet): "),
        "{trace}"
    );
    let last = trace["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["stepId"], "greet");
    assert_eq!(last["status"], "FAILED");
    let invalid = app
        .gql(
            TEST_DEFINITION,
            json!({"d": {"trigger": {"type": "manual"}, "steps": []}, "p": {}}),
        )
        .await;
    assert_eq!(error_code(&invalid), Some("VALIDATION_FAILED"));
}

/// The README's appointment reminders (issue 18): the log step reads the send's `message_id`,
/// which a dry run gives as a placeholder; the calendar's answer comes from a real GET
/// (`allowHttp`) or from `stepOutputs`; without either the loop says what it lacked.
async fn the_appointment_reminders_can_be_traced(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    app.approved_template(
        &sender,
        "appointment_reminder",
        "UTILITY",
        "Hi {{1}}, see you at {{2}}.",
    )
    .await;
    let calendar = MockServer::start().await;
    let appointments =
        json!({"appointments": [{"name": "Ada", "phone": "+14155550101", "time": "09:30"}]});
    Mock::given(method("GET"))
        .and(path("/appointments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(appointments.clone()))
        .mount(&calendar)
        .await;
    let definition = json!({
      "trigger": {"type": "schedule", "cron": "0 8 * * 1-5", "timezone": "Europe/Paris"},
      "steps": [
        {"id": "fetch", "type": "http_request", "url": format!("{}/appointments", calendar.uri())},
        {"id": "each", "type": "loop", "items": "steps.fetch.body.appointments", "steps": [
          {"id": "remind", "type": "send_template", "senderId": sender, "template": "appointment_reminder",
           "language": "en", "to": "{{ loop.item.phone }}", "variables": ["{{ loop.item.name }}", "{{ loop.item.time }}"]},
          {"id": "log", "type": "http_request", "method": "POST", "url": format!("{}/log", calendar.uri()),
           "body": {"run": "{{ run.id }}", "phone": "{{ loop.item.phone }}", "message": "{{ steps.remind.message_id }}"}}
        ]}
      ]
    });
    let flow = app
        .ok(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"input": {"name": "Reminders", "definition": definition}}),
        )
        .await["createFlow"]["id"]
        .clone();
    let test = "query($id: ID!, $http: Boolean, $outputs: JSON) { testFlow(id: $id, payload: {}, allowHttp: $http, stepOutputs: $outputs) { \
        status error steps { stepId output } } }";
    let traced = |http: bool, outputs: serde_json::Value| {
        let app = &app;
        let flow = flow.clone();
        async move {
            app.ok(test, json!({"id": flow, "http": http, "outputs": outputs}))
                .await["testFlow"]
                .clone()
        }
    };
    for trace in [
        traced(true, serde_json::Value::Null).await,
        traced(
            false,
            json!({"fetch": {"status": 200, "body": appointments}}),
        )
        .await,
    ] {
        assert_eq!(trace["status"], "SUCCEEDED", "{trace}");
        let steps = trace["steps"].as_array().unwrap();
        let ids: Vec<&str> = steps
            .iter()
            .map(|s| s["stepId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["fetch", "each", "remind", "log"]);
        assert_eq!(steps[2]["output"]["message_id"], "dry-run-remind");
        assert_eq!(steps[2]["output"]["sent"], false);
        assert_eq!(
            steps[3]["output"]["request"]["body"]["message"],
            "dry-run-remind"
        );
        assert_eq!(steps[3]["output"]["performed"], false);
    }
    let blind = traced(false, serde_json::Value::Null).await;
    assert_eq!(blind["status"], "FAILED", "{blind}");
    let error = blind["error"].as_str().unwrap();
    assert!(error.contains("steps.fetch.body.appointments"), "{error}");
    let calls: Vec<String> = calendar
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert_eq!(
        calls,
        ["GET /appointments"],
        "only the allowed GET was made"
    );
    let refused = app
        .gql(test, json!({"id": flow, "http": false, "outputs": [1]}))
        .await;
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"), "{refused}");
}

waflow_tests::on_both_databases!(
    the_appointment_reminders_can_be_traced,
    a_dry_run_shows_the_way_and_sends_nothing,
    a_dry_run_reports_the_first_error_with_its_path,
);
