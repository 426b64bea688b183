//! `generateAiReply` against a local stand-in for an OpenAI-compatible model: the request that
//! reaches the model (model, key, rendered system prompt, history in order), the conversation it
//! keeps per customer identifier, and every way the model can fail.

use std::time::Duration;

use serde_json::{Value, json};
use waflow_tests::{LLM_KEY, Llm, TestApp, chat_messages, error_code, error_fields};
use wiremock::{Mock, ResponseTemplate, matchers::method};

const GENERATE: &str = "mutation($input: GenerateAiReplyInput!) { generateAiReply(input: $input) { \
    reply conversationId messageId customerMessageId aiDisabled \
    conversation { type status customerIdentifier inputVariables messageCount aiEnabled } } }";

fn openai(llm: &Llm, extra: Value) -> Value {
    let mut input = json!({"name": "Support", "provider": "OPENAI_COMPATIBLE", "baseUrl": llm.base_url(),
        "model": "test-model", "apiKey": LLM_KEY, "temperature": 0.2, "maxTokens": 200,
        "systemPrompt": "You help {{ customer_name | default('a customer') }} with the {{ plan | default('basic') }} plan."});
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    input
}

async fn generate(app: &TestApp, assistant: &str, message: &str, variables: Value) -> Value {
    app.gql(
        GENERATE,
        json!({"input": {"assistantId": assistant, "customerIdentifier": "crm-42",
            "message": message, "variables": variables}}),
    )
    .await
}

async fn replies_keep_one_conversation_per_customer(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies("Happy to help, Ada.").await;
    let assistant = app.assistant(openai(&llm, json!({}))).await;

    let first = generate(
        &app,
        &assistant,
        "Hi, can I add a seat?",
        json!({"customer_name": "Ada", "plan": "pro"}),
    )
    .await;
    let first = &first["data"]["generateAiReply"];
    assert_eq!(first["reply"], "Happy to help, Ada.");
    assert_eq!(first["aiDisabled"], false);
    assert_eq!(first["conversation"]["type"], "API");
    assert_eq!(first["conversation"]["customerIdentifier"], "crm-42");
    assert_eq!(first["conversation"]["messageCount"], 2);

    // The same customer again: the same conversation, the variables merged.
    let second = generate(
        &app,
        &assistant,
        "And what does it cost?",
        json!({"plan": "enterprise"}),
    )
    .await;
    let second = &second["data"]["generateAiReply"];
    assert_eq!(second["conversationId"], first["conversationId"]);
    assert_eq!(
        second["conversation"]["inputVariables"],
        json!({"customer_name": "Ada", "plan": "enterprise"})
    );
    assert_eq!(second["conversation"]["messageCount"], 4);

    let bodies = llm.bodies(false).await;
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["model"], "test-model");
    assert_eq!(bodies[1]["temperature"], 0.2);
    assert_eq!(bodies[1]["max_tokens"], 200);
    assert_eq!(
        chat_messages(&bodies[1]),
        [
            ("system", "You help Ada with the enterprise plan."),
            ("user", "Hi, can I add a seat?"),
            ("assistant", "Happy to help, Ada."),
            ("user", "And what does it cost?"),
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );
    assert!(
        llm.authorizations()
            .await
            .iter()
            .all(|a| a == &format!("Bearer {LLM_KEY}"))
    );

    let conversation = first["conversationId"].as_str().unwrap();
    assert_eq!(
        app.conversation_messages(conversation).await,
        [
            ("CUSTOMER", "Hi, can I add a seat?"),
            ("ASSISTANT", "Happy to help, Ada."),
            ("CUSTOMER", "And what does it cost?"),
            ("ASSISTANT", "Happy to help, Ada."),
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );
    // Another identifier is another conversation.
    let other = app
        .ok(
            GENERATE,
            json!({"input": {"assistantId": assistant, "customerIdentifier": "ada@example.com", "message": "Hello"}}),
        )
        .await;
    assert_ne!(
        other["generateAiReply"]["conversationId"],
        first["conversationId"]
    );
}

async fn history_is_cut_to_the_budget(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies("ok").await;
    // 100 tokens: the newest messages of 40 characters (14 tokens each) that fit.
    let assistant = app
        .assistant(openai(
            &llm,
            json!({"historyTokenBudget": 100, "systemPrompt": ""}),
        ))
        .await;
    for i in 0..8 {
        let message = format!("message number {i} {}", "x".repeat(23));
        assert_eq!(message.len(), 40);
        generate(&app, &assistant, &message, json!({})).await;
    }
    let bodies = llm.bodies(false).await;
    let last = chat_messages(&bodies[7]);
    // 14 tokens a customer message, 5 a reply "ok": from the newest back, question 7 to the
    // answer to question 2 make 95 tokens; question 2 itself would make 109.
    assert_eq!(last.len(), 10, "{last:?}");
    assert_eq!(last[0], ("assistant".to_owned(), "ok".to_owned()));
    assert!(last[1].1.starts_with("message number 3"), "{last:?}");
    assert!(last[9].1.starts_with("message number 7"));
    assert!(last.iter().all(|(role, _)| role != "system"));
}

async fn model_failures_are_retried_then_reported(app: TestApp) {
    let llm = Llm::start().await;
    let assistant = app.assistant(openai(&llm, json!({}))).await;
    // Rate limited once (asked to wait 1 s), then fine.
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"message": "Rate limit reached"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&llm.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(Llm::completion("Back again."))
        .with_priority(2)
        .mount(&llm.server)
        .await;
    let started = std::time::Instant::now();
    let answer = generate(&app, &assistant, "Hello?", json!({})).await;
    assert_eq!(answer["data"]["generateAiReply"]["reply"], "Back again.");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After is honoured"
    );
    assert_eq!(llm.bodies(false).await.len(), 2);

    // A model that keeps failing with 500: four attempts, then PROVIDER_ERROR with the status.
    llm.server.reset().await;
    llm.replies_with(
        ResponseTemplate::new(500)
            .set_body_json(json!({"error": {"message": "The server had an error"}})),
    )
    .await;
    let failed = generate(&app, &assistant, "Anyone there?", json!({})).await;
    assert_eq!(error_code(&failed), Some("PROVIDER_ERROR"));
    assert_eq!(failed["errors"][0]["extensions"]["providerCode"], "500");
    assert!(
        failed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("The server had an error")
    );
    assert_eq!(llm.bodies(false).await.len(), 4);

    // A client error is not retried.
    llm.server.reset().await;
    llm.replies_with(
        ResponseTemplate::new(401)
            .set_body_json(json!({"error": {"message": "Incorrect API key provided"}})),
    )
    .await;
    let refused = generate(&app, &assistant, "Still there?", json!({})).await;
    assert_eq!(error_code(&refused), Some("PROVIDER_ERROR"));
    assert_eq!(refused["errors"][0]["extensions"]["providerCode"], "401");
    assert_eq!(llm.bodies(false).await.len(), 1);
    assert!(
        !refused.to_string().contains(LLM_KEY),
        "the key never shows in an error"
    );

    // An answer that is not Chat Completions JSON.
    llm.server.reset().await;
    llm.replies_with(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"))
        .await;
    let garbled = generate(&app, &assistant, "Hello??", json!({})).await;
    assert_eq!(error_code(&garbled), Some("PROVIDER_ERROR"));

    // Nothing listens: the error names the host and the failure, and blames no provider.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut gone = openai(&llm, json!({}));
    gone["baseUrl"] = json!(format!("http://127.0.0.1:{port}/v1"));
    let gone = app.assistant(gone).await;
    let unreachable = generate(&app, &gone, "Hello???", json!({})).await;
    assert_eq!(error_code(&unreachable), Some("PROVIDER_ERROR"));
    assert_eq!(
        unreachable["errors"][0]["message"],
        "cannot reach the model API: 127.0.0.1: connection refused",
        "{unreachable}"
    );

    // Every customer message is stored, answered or not.
    let conversation = answer["data"]["generateAiReply"]["conversationId"]
        .as_str()
        .unwrap();
    let customer: Vec<String> = app
        .conversation_messages(conversation)
        .await
        .into_iter()
        .filter(|(role, _)| role == "CUSTOMER")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        customer,
        ["Hello?", "Anyone there?", "Still there?", "Hello??"]
    );
}

async fn a_slow_model_times_out(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies_with(Llm::completion("too late").set_delay(Duration::from_secs(5)))
        .await;
    let assistant = app
        .assistant(openai(&llm, json!({"requestTimeoutSeconds": 1})))
        .await;
    let started = std::time::Instant::now();
    let answer = generate(&app, &assistant, "Quick question", json!({})).await;
    assert_eq!(error_code(&answer), Some("PROVIDER_ERROR"));
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1 s")
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

async fn scripted_assistants_answer_offline(app: TestApp) {
    let assistant = app
        .assistant(json!({"name": "Shop bot", "provider": "SCRIPTED",
            "scriptedRules": [
                {"pattern": "(?i)order (?P<number>\\d+)", "reply": "{{ customer_name }}, order {{ groups.number }} ships today."},
                {"pattern": "(?i)price", "reply": "Our {{ plan }} plan is 10 EUR."}],
            "fallbackReply": "A human will answer: {{ message }}"}))
        .await;
    let answer = |message: &'static str| {
        let app = &app;
        let assistant = assistant.clone();
        async move {
            app.ok(
                GENERATE,
                json!({"input": {"assistantId": assistant, "customerIdentifier": "+14155550123",
                    "message": message, "variables": {"customer_name": "Ada", "plan": "pro"}}}),
            )
            .await["generateAiReply"]["reply"]
                .clone()
        }
    };
    assert_eq!(
        answer("Where is ORDER 42?").await,
        "Ada, order 42 ships today."
    );
    assert_eq!(answer("What's the price?").await, "Our pro plan is 10 EUR.");
    assert_eq!(
        answer("Can I talk to someone").await,
        "A human will answer: Can I talk to someone"
    );

    // Without a fallback, no rule matching means no reply (and no stored reply message).
    let quiet = app
        .assistant(json!({"name": "Quiet", "provider": "SCRIPTED",
            "scriptedRules": [{"pattern": "^hi$", "reply": "hello"}]}))
        .await;
    let data = app
        .ok(
            GENERATE,
            json!({"input": {"assistantId": quiet, "customerIdentifier": "x", "message": "something else"}}),
        )
        .await;
    assert_eq!(data["generateAiReply"]["reply"], Value::Null);
    assert_eq!(data["generateAiReply"]["messageId"], Value::Null);
    assert_eq!(data["generateAiReply"]["conversation"]["messageCount"], 1);
}

async fn a_human_takes_over(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies("An AI answer").await;
    let assistant = app.assistant(openai(&llm, json!({}))).await;
    let first = generate(&app, &assistant, "Hello", json!({})).await;
    let conversation = first["data"]["generateAiReply"]["conversationId"].clone();
    let off = app
        .ok(
            "mutation($id: ID!) { setConversationAiEnabled(id: $id, enabled: false) { aiEnabled } }",
            json!({"id": conversation}),
        )
        .await;
    assert_eq!(off["setConversationAiEnabled"]["aiEnabled"], false);

    let answer = generate(&app, &assistant, "I want a person", json!({})).await;
    let answer = &answer["data"]["generateAiReply"];
    assert_eq!(answer["aiDisabled"], true);
    assert_eq!(answer["reply"], Value::Null);
    assert_eq!(answer["conversationId"], conversation);
    assert_eq!(llm.bodies(false).await.len(), 1, "the model is not asked");
    assert_eq!(
        answer["conversation"]["messageCount"], 3,
        "the message is stored"
    );

    app.ok(
        "mutation($id: ID!) { setConversationAiEnabled(id: $id, enabled: true) { aiEnabled } }",
        json!({"id": conversation}),
    )
    .await;
    let back = generate(&app, &assistant, "Thanks", json!({})).await;
    assert_eq!(back["data"]["generateAiReply"]["reply"], "An AI answer");
}

async fn bad_requests_are_refused(app: TestApp) {
    let assistant = app
        .assistant(json!({"name": "Bot", "provider": "SCRIPTED", "fallbackReply": "hi"}))
        .await;
    let with = |input: Value| {
        let mut full =
            json!({"assistantId": assistant, "customerIdentifier": "crm-1", "message": "hello"});
        for (k, v) in input.as_object().unwrap() {
            full[k] = v.clone();
        }
        json!({"input": full})
    };
    let empty = app
        .gql(GENERATE, with(json!({"customerIdentifier": " "})))
        .await;
    assert_eq!(error_code(&empty), Some("VALIDATION_FAILED"));
    assert_eq!(error_fields(&empty), ["customerIdentifier"]);
    let blank = app.gql(GENERATE, with(json!({"message": ""}))).await;
    assert_eq!(error_fields(&blank), ["message"]);
    let long = app
        .gql(GENERATE, with(json!({"message": "x".repeat(4097)})))
        .await;
    assert_eq!(error_code(&long), Some("MESSAGE_TOO_LONG"));
    let list = app.gql(GENERATE, with(json!({"variables": [1, 2]}))).await;
    assert_eq!(error_fields(&list), ["variables"]);
    let unknown = app
        .gql(
            GENERATE,
            with(json!({"assistantId": uuid::Uuid::now_v7().to_string()})),
        )
        .await;
    assert_eq!(error_code(&unknown), Some("NOT_FOUND"));
    // Another workspace's assistant is not found either.
    let other_key = app.other_workspace().await;
    let foreign = app
        .gql_as(Some(&other_key), GENERATE, with(json!({})))
        .await;
    assert_eq!(error_code(&foreign), Some("NOT_FOUND"));
}

waflow_tests::on_both_databases!(
    replies_keep_one_conversation_per_customer,
    history_is_cut_to_the_budget,
    model_failures_are_retried_then_reported,
    a_slow_model_times_out,
    scripted_assistants_answer_offline,
    a_human_takes_over,
    bad_requests_are_refused,
);
