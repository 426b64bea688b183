//! The product docs' three example workflows, end to end through the API: post-call follow-up,
//! lead qualification and appointment reminders. Their definitions are the README's.

use serde_json::{Value, json};
use waflow_tests::{TestApp, eventually};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::flows::{live_flow, run_in};

/// The outbound messages to `phone`, as their bodies.
async fn sent_to(app: &TestApp, phone: &str) -> Vec<String> {
    let data = app
        .ok(
            "query($p: String!) { conversations(filter: {customerPhone: $p}, first: 10) { edges { node { id } } } }",
            json!({"p": phone}),
        )
        .await;
    let mut bodies = Vec::new();
    for edge in data["conversations"]["edges"].as_array().unwrap() {
        let id = edge["node"]["id"].as_str().unwrap();
        let messages = app
            .ok(
                "query($id: ID!) { conversation(id: $id) { messages(first: 50) { edges { node { direction body } } } } }",
                json!({"id": id}),
            )
            .await;
        for m in messages["conversation"]["messages"]["edges"]
            .as_array()
            .unwrap()
        {
            if m["node"]["direction"] == "OUTBOUND" {
                bodies.push(m["node"]["body"].as_str().unwrap().to_owned());
            }
        }
    }
    bodies
}

async fn post_call_follow_up(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    app.approved_template(
        &sender,
        "call_thanks",
        "UTILITY",
        "Thanks for the call, {{1}}!",
    )
    .await;
    app.approved_template(
        &sender,
        "call_missed",
        "UTILITY",
        "Sorry we missed you, {{1}}.",
    )
    .await;
    let (_flow, _) = live_flow(
        &app,
        json!({
          "trigger": {"type": "event", "name": "call.completed"},
          "steps": [
            {"id": "wait", "type": "delay", "seconds": 2},
            {"id": "route", "type": "branch",
             "branches": [{"when": "trigger.outcome == 'answered'", "steps": [
               {"id": "thanks", "type": "send_template", "senderId": sender, "template": "call_thanks",
                "language": "en", "to": "{{ trigger.customer_phone }}", "variables": ["{{ trigger.customer_name }}"]}]}],
             "else": [
               {"id": "missed", "type": "send_template", "senderId": sender, "template": "call_missed",
                "language": "en", "to": "{{ trigger.customer_phone }}", "variables": ["{{ trigger.customer_name }}"]}]}
          ]
        }),
    )
    .await;
    let emit = "mutation($p: JSON!) { emitEvent(name: \"call.completed\", payload: $p) }";
    let answered = app
        .ok(emit, json!({"p": {"customer_phone": "+14155550101", "customer_name": "Ada", "outcome": "answered"}}))
        .await["emitEvent"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let missed = app
        .ok(emit, json!({"p": {"customer_phone": "+14155550102", "customer_name": "Bob", "outcome": "no_answer"}}))
        .await["emitEvent"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = run_in(&app, &answered, "WAITING").await;
    assert_eq!(waiting["steps"][0]["stepId"], "wait");
    assert!(
        sent_to(&app, "+14155550101").await.is_empty(),
        "nothing before the delay"
    );

    let done = run_in(&app, &answered, "SUCCEEDED").await;
    let steps: Vec<&str> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stepId"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["wait", "route", "thanks"]);
    assert_eq!(done["steps"][1]["output"], json!({"branch": 0}));
    run_in(&app, &missed, "SUCCEEDED").await;
    assert_eq!(
        sent_to(&app, "+14155550101").await,
        ["Thanks for the call, Ada!"]
    );
    assert_eq!(
        sent_to(&app, "+14155550102").await,
        ["Sorry we missed you, Bob."]
    );
}

async fn lead_qualification(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    app.approved_template(
        &sender,
        "lead_welcome",
        "MARKETING",
        "Hi {{1}}! What is your budget?",
    )
    .await;
    let assistant = app
        .assistant(json!({"name": "Qualifier", "provider": "SCRIPTED",
            "scriptedRules": [{"pattern": "(?P<amount>\\d+)", "reply": "A budget of {{ groups.amount }} fits our Pro plan."}],
            "fallbackReply": "Thanks, a colleague will call you."}))
        .await;
    let crm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/leads"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "lead-77"})))
        .mount(&crm)
        .await;
    let (flow, secret) = live_flow(
        &app,
        json!({
          "trigger": {"type": "webhook"},
          "concurrencyKey": "{{ trigger.phone }}",
          "steps": [
            {"id": "welcome", "type": "send_template", "senderId": sender, "template": "lead_welcome",
             "language": "en", "to": "{{ trigger.phone }}", "recipientName": "{{ trigger.name }}",
             "variables": ["{{ trigger.name }}"]},
            {"id": "budget", "type": "wait_for_reply", "senderId": sender, "phone": "{{ trigger.phone }}",
             "timeoutSeconds": 86400},
            {"id": "qualify", "type": "generate_ai_reply", "assistantId": assistant,
             "customerIdentifier": "{{ trigger.phone }}", "message": "{{ steps.budget.message.message }}",
             "variables": {"name": "{{ trigger.name }}"}},
            {"id": "crm", "type": "http_request", "method": "POST", "url": format!("{}/leads", crm.uri()),
             "headers": {"X-Source": "waflow"},
             "body": {"name": "{{ trigger.name }}", "phone": "{{ trigger.phone }}",
                      "budget": "{{ steps.budget.message.message }}", "assessment": "{{ steps.qualify.reply }}"}}
          ]
        }),
    )
    .await;
    let hook = app.url(&format!("/hooks/flows/{flow}"));
    let wrong = app
        .http
        .post(&hook)
        .header("x-waflow-secret", "whfl_wrong")
        .json(&json!({"name": "Eve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let accepted = app
        .http
        .post(&hook)
        .bearer_auth(&secret)
        .json(&json!({"name": "Ada", "phone": "+14155550123", "source": "landing page"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let run_id = accepted.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    run_in(&app, &run_id, "WAITING").await;
    assert_eq!(
        sent_to(&app, "+14155550123").await,
        ["Hi Ada! What is your budget?"]
    );

    app.customer_writes(&sender, "+14155550123", "About 5000 a year")
        .await;
    let done = run_in(&app, &run_id, "SUCCEEDED").await;
    assert_eq!(
        done["steps"][2]["output"]["reply"],
        "A budget of 5000 fits our Pro plan."
    );
    assert_eq!(done["steps"][3]["output"]["status"], 201);
    assert_eq!(done["steps"][3]["output"]["body"], json!({"id": "lead-77"}));
    let posted = crm.received_requests().await.unwrap();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].headers["x-source"], "waflow");
    assert_eq!(
        serde_json::from_slice::<Value>(&posted[0].body).unwrap(),
        json!({"name": "Ada", "phone": "+14155550123", "budget": "About 5000 a year",
               "assessment": "A budget of 5000 fits our Pro plan."})
    );
}

async fn appointment_reminders(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    app.approved_template(
        &sender,
        "appointment_reminder",
        "UTILITY",
        "Hi {{1}}, see you at {{2}}.",
    )
    .await;
    let calendar = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/appointments"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"appointments": [
            {"name": "Ada", "phone": "+14155550101", "time": "09:30"},
            {"name": "Bob", "phone": "+14155550102", "time": "11:00"}]})),
        )
        .mount(&calendar)
        .await;
    Mock::given(method("POST"))
        .and(path("/log"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&calendar)
        .await;
    let (flow, _) = live_flow(
        &app,
        json!({
          "trigger": {"type": "schedule", "cron": "*/2 * * * * *", "timezone": "Europe/Paris"},
          "steps": [
            {"id": "fetch", "type": "http_request", "url": format!("{}/appointments", calendar.uri())},
            {"id": "each", "type": "loop", "items": "steps.fetch.body.appointments", "steps": [
              {"id": "remind", "type": "send_template", "senderId": sender, "template": "appointment_reminder",
               "language": "en", "to": "{{ loop.item.phone }}", "variables": ["{{ loop.item.name }}", "{{ loop.item.time }}"]},
              {"id": "log", "type": "http_request", "method": "POST", "url": format!("{}/log", calendar.uri()),
               "body": {"run": "{{ run.id }}", "phone": "{{ loop.item.phone }}", "message": "{{ steps.remind.message_id }}"}}
            ]}
          ]
        }),
    )
    .await;
    let first = eventually("the schedule to fire", || async {
        let data = app
            .ok(
                "query($f: ID!) { flowRuns(flowId: $f, first: 1) { edges { node { id triggerType trigger } } } }",
                json!({"f": flow}),
            )
            .await;
        data["flowRuns"]["edges"][0]["node"].as_object().cloned()
    })
    .await;
    // One firing is enough for the test.
    app.ok(
        "mutation($id: ID!) { setFlowEnabled(id: $id, enabled: false) { enabled } }",
        json!({"id": flow}),
    )
    .await;
    assert_eq!(first["triggerType"], "schedule");
    assert!(first["trigger"]["scheduled_at"].is_string());
    let run_id = first["id"].as_str().unwrap();
    let done = run_in(&app, run_id, "SUCCEEDED").await;
    let steps: Vec<(String, String)> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stepId"].as_str().unwrap().to_owned(),
                s["iteration"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("fetch", ""),
        ("each", ""),
        ("remind", "0"),
        ("log", "0"),
        ("remind", "1"),
        ("log", "1"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(steps, expected);
    assert!(
        sent_to(&app, "+14155550101")
            .await
            .contains(&"Hi Ada, see you at 09:30.".to_owned())
    );
    assert!(
        sent_to(&app, "+14155550102")
            .await
            .contains(&"Hi Bob, see you at 11:00.".to_owned())
    );
    let logged: Vec<Value> = calendar
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/log")
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["run"] == run_id)
        .collect();
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0]["phone"], "+14155550101");
    assert_eq!(
        logged[0]["message"],
        done["steps"][2]["output"]["message_id"]
    );
}

waflow_tests::on_both_databases!(
    post_call_follow_up,
    lead_qualification,
    appointment_reminders
);
