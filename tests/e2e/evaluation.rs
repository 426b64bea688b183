//! The post-conversation evaluation: when an evaluating assistant's conversation ends, the model
//! is asked for the extraction fields as JSON (a strict JSON schema), and the conversation-ended
//! event and webhook wait for the answer, or go out FAILED or TIMED_OUT.

use std::time::Duration;

use serde_json::{Value, json};
use waflow_tests::{
    Backend, LLM_KEY, Llm, Subscriber, TestApp, WebhookReceiver, chat_messages, eventually,
    spawn_app_with,
};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{body_string_contains, method},
};

const ENDED: &str = "subscription { conversationEnded { conversationId assistantId extractionStatus \
    extractedVariables transcriptText } }";
const END: &str = "mutation($id: ID!) { endConversation(id: $id) { id } }";

fn evaluating(llm: &Llm) -> Value {
    json!({"name": "Sales", "provider": "OPENAI_COMPATIBLE", "baseUrl": llm.base_url(),
        "model": "test-model", "apiKey": LLM_KEY, "evaluationEnabled": true,
        "systemPrompt": "Sell the {{ plan }} plan.",
        "extractionFields": [
            {"name": "plan", "type": "ENUM", "options": ["basic", "pro"], "description": "The plan chosen"},
            {"name": "seats", "type": "NUMBER"}]})
}

/// An API conversation with one exchange; returns its id.
async fn talk(app: &TestApp, assistant: &str, message: &str) -> String {
    let data = app
        .ok(
            "mutation($input: GenerateAiReplyInput!) { generateAiReply(input: $input) { conversationId } }",
            json!({"input": {"assistantId": assistant, "customerIdentifier": "crm-7", "message": message,
                "variables": {"plan": "pro"}}}),
        )
        .await;
    data["generateAiReply"]["conversationId"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn ended_event(subscriber: &mut Subscriber, wait: Duration) -> Value {
    subscriber
        .next_event(wait)
        .await
        .expect("conversationEnded")["conversationEnded"]
        .clone()
}

async fn conversation(app: &TestApp, id: &str) -> Value {
    app.ok(
        "query($id: ID!) { conversation(id: $id) { status extractionStatus extractionError extractedVariables } }",
        json!({"id": id}),
    )
    .await["conversation"]
        .clone()
}

async fn the_end_waits_for_the_evaluation(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies("Pro it is, with 3 seats.").await;
    llm.evaluates(
        r#"{"status": true, "summary": "Bought pro for 3 seats", "plan": "pro", "seats": 3}"#,
    )
    .await;
    let receiver = WebhookReceiver::register(&app, json!(["CONVERSATION_ENDED"])).await;
    let assistant = app.assistant(evaluating(&llm)).await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber.subscribe("1", ENDED).await;

    let id = talk(&app, &assistant, "I need 3 seats on pro").await;
    app.ok(END, json!({"id": id})).await;
    let event = ended_event(&mut subscriber, Duration::from_secs(15)).await;
    assert_eq!(event["conversationId"], id.as_str());
    assert_eq!(event["assistantId"], assistant.as_str());
    assert_eq!(event["extractionStatus"], "COMPLETED");
    assert_eq!(
        event["extractedVariables"],
        json!({"status": true, "summary": "Bought pro for 3 seats", "plan": "pro", "seats": 3})
    );

    // What the model was asked: a strict schema of every field, and the transcript.
    let asked = llm.bodies(true).await;
    assert_eq!(asked.len(), 1);
    let format = &asked[0]["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    assert_eq!(
        schema["required"],
        json!(["status", "summary", "plan", "seats"])
    );
    assert_eq!(
        schema["properties"]["plan"],
        json!({"type": ["string", "null"], "enum": ["basic", "pro", null], "description": "The plan chosen"})
    );
    assert_eq!(
        schema["properties"]["seats"]["type"],
        json!(["number", "null"])
    );
    let messages = chat_messages(&asked[0]);
    assert_eq!(messages[0].0, "system");
    assert!(
        messages[0].1.contains("Sell the pro plan."),
        "{}",
        messages[0].1
    );
    assert!(
        messages[0]
            .1
            .contains("- plan (one of [\"basic\", \"pro\"]): The plan chosen")
    );
    assert_eq!(messages[1].0, "user");
    assert!(
        messages[1]
            .1
            .ends_with("Customer: I need 3 seats on pro\nAI: Pro it is, with 3 seats.")
    );
    assert!(
        llm.authorizations()
            .await
            .iter()
            .all(|a| a == &format!("Bearer {LLM_KEY}"))
    );

    let stored = conversation(&app, &id).await;
    assert_eq!(stored["extractionStatus"], "COMPLETED");
    assert_eq!(stored["extractedVariables"]["plan"], "pro");
    // The webhook carries the same evaluation.
    let delivered = receiver
        .first_delivery("the conversation.ended webhook")
        .await;
    assert_eq!(delivered["event"], "conversation.ended");
    assert_eq!(delivered["extraction_status"], "COMPLETED");
    assert_eq!(delivered["assistant_id"], assistant.as_str());
    assert_eq!(delivered["extracted_variables"]["seats"], 3);
}

async fn invalid_answers_are_asked_again_once(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies("Noted.").await;
    Mock::given(method("POST"))
        .and(body_string_contains("response_format"))
        .respond_with(Llm::completion("Sure! The plan is pro."))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&llm.server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("response_format"))
        .respond_with(Llm::completion(
            r#"{"status": false, "summary": "Undecided", "plan": null, "seats": null}"#,
        ))
        .with_priority(2)
        .mount(&llm.server)
        .await;
    let assistant = app.assistant(evaluating(&llm)).await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber.subscribe("1", ENDED).await;

    let id = talk(&app, &assistant, "Just looking").await;
    app.ok(END, json!({"id": id})).await;
    let event = ended_event(&mut subscriber, Duration::from_secs(15)).await;
    assert_eq!(event["extractionStatus"], "COMPLETED");
    assert_eq!(event["extractedVariables"]["summary"], "Undecided");
    let asked = llm.bodies(true).await;
    assert_eq!(asked.len(), 2);
    let retry = chat_messages(&asked[1]);
    assert_eq!(
        retry[2],
        ("assistant".into(), "Sure! The plan is pro.".into())
    );
    assert!(retry[3].1.starts_with("That answer is not valid"));

    // Wrong twice (a value outside the ENUM): FAILED, with nothing extracted.
    llm.server.reset().await;
    llm.replies("Noted.").await;
    llm.evaluates(r#"{"status": true, "summary": "x", "plan": "gold", "seats": 1}"#)
        .await;
    let id = talk(&app, &assistant, "Gold plan please").await;
    app.ok(END, json!({"id": id})).await;
    let event = ended_event(&mut subscriber, Duration::from_secs(15)).await;
    assert_eq!(event["extractionStatus"], "FAILED");
    assert_eq!(event["extractedVariables"], json!({}));
    assert_eq!(llm.bodies(true).await.len(), 2);
    let failed = conversation(&app, &id).await;
    assert_eq!(failed["extractionStatus"], "FAILED");
    // The reason is on the conversation, not only in the server's log (issue 18).
    let why = failed["extractionError"].as_str().unwrap_or_default();
    assert!(why.contains("plan"), "{failed}");

    // A model that refuses (a 400 is not retried) fails the evaluation too.
    llm.server.reset().await;
    llm.replies("Noted.").await;
    Mock::given(method("POST"))
        .and(body_string_contains("response_format"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"message": "Invalid schema for response_format"}})),
        )
        .mount(&llm.server)
        .await;
    let id = talk(&app, &assistant, "Hello").await;
    app.ok(END, json!({"id": id})).await;
    let event = ended_event(&mut subscriber, Duration::from_secs(15)).await;
    assert_eq!(event["extractionStatus"], "FAILED");
    let failed = conversation(&app, &id).await;
    let why = failed["extractionError"].as_str().unwrap_or_default();
    assert!(
        why.contains("Invalid schema for response_format"),
        "{failed}"
    );
}

async fn scripted_assistants_extract_with_patterns(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    let assistant = app
        .assistant(
            json!({"name": "Leads", "provider": "SCRIPTED", "evaluationEnabled": true,
            "replyDebounceMs": 0, "fallbackReply": "Thanks, {{ customer_name }}!",
            "extractionFields": [
                {"name": "email", "type": "STRING", "pattern": "[\\w.]+@[\\w.]+"},
                {"name": "wants_demo", "type": "BOOLEAN", "pattern": "(?i)\\bdemo\\b"}]}),
        )
        .await;
    app.ok(
        "mutation($id: ID!, $input: UpdateSenderInput!) { updateSender(id: $id, input: $input) { id } }",
        json!({"id": sender, "input": {"assistantId": assistant}}),
    )
    .await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber.subscribe("1", ENDED).await;
    let written = app
        .customer_writes(&sender, "+14155550123", "Book a demo: ada@example.com")
        .await;
    let id = written["conversation"]["id"].as_str().unwrap().to_owned();
    eventually("the auto-reply", || async {
        let data = app
            .ok(
                "query($id: ID!) { conversation(id: $id) { messageCount } }",
                json!({"id": id}),
            )
            .await;
        (data["conversation"]["messageCount"] == 2).then_some(())
    })
    .await;
    app.ok(END, json!({"id": id})).await;
    let event = ended_event(&mut subscriber, Duration::from_secs(15)).await;
    assert_eq!(event["assistantId"], assistant.as_str());
    assert_eq!(event["extractionStatus"], "COMPLETED");
    assert_eq!(
        event["extractedVariables"],
        json!({"status": null, "summary": null, "email": "ada@example.com", "wants_demo": true})
    );
    assert_eq!(
        event["transcriptText"],
        "Customer: Book a demo: ada@example.com\nAI: Thanks, Ana!"
    );
}

waflow_tests::on_both_databases!(
    the_end_waits_for_the_evaluation,
    invalid_answers_are_asked_again_once,
    scripted_assistants_extract_with_patterns,
);

/// The end is announced TIMED_OUT when the evaluation is slower than the deadline; the late
/// result is still stored on the conversation.
async fn a_slow_evaluation_times_out(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |services| {
        services.evaluation_timeout = Duration::from_secs(2);
    })
    .await
    else {
        return;
    };
    let llm = Llm::start().await;
    llm.replies("Noted.").await;
    Mock::given(method("POST"))
        .and(body_string_contains("response_format"))
        .respond_with(
            Llm::completion(r#"{"status": true, "summary": "Late", "plan": "basic", "seats": 1}"#)
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&llm.server)
        .await;
    let assistant = app.assistant(evaluating(&llm)).await;
    let mut subscriber = app.subscriber(&app.key).await.unwrap();
    subscriber.subscribe("1", ENDED).await;
    let id = talk(&app, &assistant, "Basic, one seat").await;
    app.ok(END, json!({"id": id})).await;
    let started = std::time::Instant::now();
    let event = ended_event(&mut subscriber, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the deadline, not the model, decided"
    );
    assert_eq!(event["extractionStatus"], "TIMED_OUT");
    assert_eq!(event["extractedVariables"], json!({}));

    let late = eventually("the late evaluation to be stored", || async {
        let c = conversation(&app, &id).await;
        (c["extractionStatus"] == "COMPLETED").then_some(c)
    })
    .await;
    assert_eq!(late["extractedVariables"]["summary"], "Late");
    assert!(
        subscriber
            .next_event(Duration::from_secs(1))
            .await
            .is_none(),
        "the end is announced once"
    );
}

mod a_slow_evaluation_times_out {
    #[tokio::test]
    async fn sqlite() {
        super::a_slow_evaluation_times_out(waflow_tests::Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        super::a_slow_evaluation_times_out(waflow_tests::Backend::Postgres).await;
    }
}
