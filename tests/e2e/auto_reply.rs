//! Auto-reply: a sender with an assistant answers inbound WhatsApp messages by itself, through
//! the normal send path, once per burst, one reply at a time per conversation, and not while a
//! human has taken over or after the customer opted out.

use std::time::Duration;

use serde_json::{Value, json};
use waflow_tests::{
    APP_SECRET, LLM_KEY, Llm, Meta, TestApp, chat_messages, error_code, error_fields, eventually,
    messages_webhook,
};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

const CUSTOMER: &str = "+14155550123";
const PN: &str = "PN-300";

async fn use_assistant(app: &TestApp, sender: &str, assistant: &str) {
    app.ok(
        "mutation($id: ID!, $input: UpdateSenderInput!) { updateSender(id: $id, input: $input) { id } }",
        json!({"id": sender, "input": {"assistantId": assistant}}),
    )
    .await;
}

fn openai(llm: &Llm, debounce_ms: i64) -> Value {
    json!({"name": "Support", "provider": "OPENAI_COMPATIBLE", "baseUrl": llm.base_url(),
        "model": "test-model", "apiKey": LLM_KEY, "replyDebounceMs": debounce_ms,
        "systemPrompt": "You are Acme's assistant. The customer is {{ customer_name }}."})
}

async fn replies(app: &TestApp, conversation: &str) -> Vec<String> {
    app.conversation_messages(conversation)
        .await
        .into_iter()
        .filter(|(role, _)| role == "ASSISTANT")
        .map(|(_, body)| body)
        .collect()
}

async fn waits_for_replies(app: &TestApp, conversation: &str, n: usize) -> Vec<String> {
    eventually(&format!("{n} auto-replies"), || async {
        let found = replies(app, conversation).await;
        (found.len() >= n).then_some(found)
    })
    .await
}

/// A sandbox sender whose scripted assistant answers at once with "You said: <message>".
async fn echoing_sender(app: &TestApp) -> String {
    let sender = app.sandbox_sender("+14155550199").await;
    let assistant = app
        .assistant(
            json!({"name": "Echo", "provider": "SCRIPTED", "replyDebounceMs": 0,
            "fallbackReply": "You said: {{ message }}"}),
        )
        .await;
    use_assistant(app, &sender, &assistant).await;
    sender
}

/// Answers each chat request with "Re: <the customer's last message>", slowly.
struct SlowEcho(Duration);

impl wiremock::Respond for SlowEcho {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let last = chat_messages(&body).last().unwrap().1.clone();
        Llm::completion(&format!("Re: {last}")).set_delay(self.0)
    }
}

async fn a_whatsapp_message_is_answered_through_the_provider(app: TestApp) {
    let meta = Meta::start().await;
    let llm = Llm::start().await;
    llm.replies("Hi Sheena, your order ships today.").await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "contacts": [{"input": "14155550123", "wa_id": "14155550123"}],
            "messages": [{"id": "wamid.AI-REPLY"}]})))
        .mount(&meta.server)
        .await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    let assistant = app.assistant(openai(&llm, 200)).await;
    use_assistant(&app, &sender, &assistant).await;

    let inbound = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Sheena"}, "wa_id": "14155550123"}],
               "messages": [{"from": "14155550123", "id": "wamid.IN-1", "timestamp": chrono::Utc::now().timestamp().to_string(),
                             "type": "text", "text": {"body": "Where is my order?"}}]}),
    );
    assert_eq!(app.webhook(&inbound, Some(APP_SECRET)).await, 200);

    let sent = eventually("the reply to reach Meta", || async {
        let sent = meta.requests("POST", &format!("/{PN}/messages")).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["to"], "14155550123");
    assert_eq!(body["type"], "text");
    assert_eq!(body["text"]["body"], "Hi Sheena, your order ships today.");

    let asked = llm.bodies(false).await;
    assert_eq!(
        chat_messages(&asked[0]),
        [
            (
                "system",
                "You are Acme's assistant. The customer is Sheena."
            ),
            ("user", "Where is my order?"),
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );
    // One message, one reply: nothing more goes out later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        meta.requests("POST", &format!("/{PN}/messages"))
            .await
            .len(),
        1
    );
    assert_eq!(llm.bodies(false).await.len(), 1);
    let data = app
        .ok(
            "{ conversations(first: 5) { edges { node { id assistant { id } messages(first: 5) { edges { node { role direction status providerMessageId } } } } } } }",
            json!({}),
        )
        .await;
    let conversation = &data["conversations"]["edges"][0]["node"];
    assert_eq!(conversation["assistant"]["id"], assistant.as_str());
    let reply = &conversation["messages"]["edges"][1]["node"];
    assert_eq!(reply["role"], "ASSISTANT");
    assert_eq!(reply["direction"], "OUTBOUND");
    assert_eq!(reply["providerMessageId"], "wamid.AI-REPLY");
}

async fn a_burst_is_answered_once(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies("One answer to all three.").await;
    let sender = app.sandbox_sender("+14155550199").await;
    let assistant = app.assistant(openai(&llm, 1500)).await;
    use_assistant(&app, &sender, &assistant).await;

    let first = app.customer_writes(&sender, CUSTOMER, "Hi").await;
    app.customer_writes(&sender, CUSTOMER, "I ordered a lamp")
        .await;
    app.customer_writes(&sender, CUSTOMER, "It arrived broken")
        .await;
    let conversation = first["conversation"]["id"].as_str().unwrap();

    assert_eq!(
        waits_for_replies(&app, conversation, 1).await,
        ["One answer to all three."]
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replies(&app, conversation).await.len(), 1, "answered once");
    let asked = llm.bodies(false).await;
    assert_eq!(asked.len(), 1);
    let users: Vec<String> = chat_messages(&asked[0])
        .into_iter()
        .filter(|(role, _)| role == "user")
        .map(|(_, content)| content)
        .collect();
    assert_eq!(users, ["Hi", "I ordered a lamp", "It arrived broken"]);
}

async fn replies_come_one_at_a_time_in_order(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies_with(ResponseTemplate::new(200)).await;
    llm.server.reset().await;
    Mock::given(method("POST"))
        .respond_with(SlowEcho(Duration::from_millis(1500)))
        .mount(&llm.server)
        .await;
    let sender = app.sandbox_sender("+14155550199").await;
    let assistant = app.assistant(openai(&llm, 0)).await;
    use_assistant(&app, &sender, &assistant).await;

    let first = app.customer_writes(&sender, CUSTOMER, "first").await;
    let conversation = first["conversation"]["id"].as_str().unwrap();
    // The model is still busy with the first message when the second arrives.
    eventually("the model to be asked", || async {
        (!llm.bodies(false).await.is_empty()).then_some(())
    })
    .await;
    app.customer_writes(&sender, CUSTOMER, "second").await;

    assert_eq!(
        waits_for_replies(&app, conversation, 2).await,
        ["Re: first", "Re: second"]
    );
    let asked = llm.bodies(false).await;
    assert_eq!(asked.len(), 2);
    // The second request was made after the first reply was stored: it is in its history, and
    // the message to answer comes last although it was written before that reply.
    let second = chat_messages(&asked[1]);
    let tail: Vec<(&str, &str)> = second[second.len() - 3..]
        .iter()
        .map(|(r, c)| (r.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            ("user", "first"),
            ("assistant", "Re: first"),
            ("user", "second")
        ]
    );
    assert_eq!(
        app.conversation_messages(conversation).await,
        [
            ("CUSTOMER", "first"),
            ("CUSTOMER", "second"),
            ("ASSISTANT", "Re: first"),
            ("ASSISTANT", "Re: second"),
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );
}

async fn a_human_takeover_stops_auto_reply(app: TestApp) {
    let sender = echoing_sender(&app).await;
    let first = app.customer_writes(&sender, CUSTOMER, "hello").await;
    let conversation = first["conversation"]["id"].as_str().unwrap();
    assert_eq!(
        waits_for_replies(&app, conversation, 1).await,
        ["You said: hello"]
    );

    let off = app
        .ok(
            "mutation($id: ID!) { setConversationAiEnabled(id: $id, enabled: false) { aiEnabled } }",
            json!({"id": conversation}),
        )
        .await;
    assert_eq!(off["setConversationAiEnabled"]["aiEnabled"], false);
    app.customer_writes(&sender, CUSTOMER, "I want a human")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replies(&app, conversation).await.len(), 1, "no auto-reply");

    app.ok(
        "mutation($id: ID!) { setConversationAiEnabled(id: $id, enabled: true) { aiEnabled } }",
        json!({"id": conversation}),
    )
    .await;
    app.customer_writes(&sender, CUSTOMER, "thanks, bot").await;
    // Only what came after the takeover ended is answered.
    assert_eq!(
        waits_for_replies(&app, conversation, 2).await,
        ["You said: hello", "You said: thanks, bot"]
    );
}

async fn opted_out_customers_get_no_reply(app: TestApp) {
    let sender = echoing_sender(&app).await;
    let stop = app.customer_writes(&sender, CUSTOMER, "STOP").await;
    let conversation = stop["conversation"]["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(replies(&app, conversation).await.is_empty());
}

async fn a_failing_model_sends_the_fallback_reply(app: TestApp) {
    let llm = Llm::start().await;
    llm.replies_with(
        ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Invalid key"}})),
    )
    .await;
    let sender = app.sandbox_sender("+14155550199").await;
    let mut input = openai(&llm, 0);
    input["fallbackReply"] = json!("Sorry, a colleague will get back to you.");
    let assistant = app.assistant(input).await;
    use_assistant(&app, &sender, &assistant).await;
    let written = app.customer_writes(&sender, CUSTOMER, "Hello?").await;
    let conversation = written["conversation"]["id"].as_str().unwrap();
    assert_eq!(
        waits_for_replies(&app, conversation, 1).await,
        ["Sorry, a colleague will get back to you."]
    );
    assert_eq!(llm.bodies(false).await.len(), 1, "a 401 is not retried");
}

async fn senders_name_assistants_of_their_workspace(app: TestApp) {
    let create = "mutation($input: CreateSenderInput!) { createSender(input: $input) { id assistant { name } } }";
    let unknown = app
        .gql(
            create,
            json!({"input": {"phoneNumber": "+14155550199", "displayName": "Acme", "provider": "SANDBOX",
                "assistantId": uuid::Uuid::now_v7().to_string()}}),
        )
        .await;
    assert_eq!(error_code(&unknown), Some("VALIDATION_FAILED"));
    assert_eq!(error_fields(&unknown), ["assistantId"]);

    let assistant = app
        .assistant(json!({"name": "Echo", "provider": "SCRIPTED", "fallbackReply": "hi"}))
        .await;
    let created = app
        .ok(
            create,
            json!({"input": {"phoneNumber": "+14155550199", "displayName": "Acme", "provider": "SANDBOX",
                "assistantId": assistant}}),
        )
        .await;
    assert_eq!(created["createSender"]["assistant"]["name"], "Echo");
    let sender = created["createSender"]["id"].as_str().unwrap();

    // Another workspace's assistant is no assistant here.
    let other_key = app.other_workspace().await;
    let foreign = app
        .gql_as(
            Some(&other_key),
            "mutation($input: CreateAssistantInput!) { createAssistant(input: $input) { id } }",
            json!({"input": {"name": "Theirs", "provider": "SCRIPTED", "fallbackReply": "hi"}}),
        )
        .await;
    let foreign_id = foreign["data"]["createAssistant"]["id"].clone();
    let update = "mutation($id: ID!, $input: UpdateSenderInput!) { updateSender(id: $id, input: $input) { assistant { name } } }";
    let refused = app
        .gql(
            update,
            json!({"id": sender, "input": {"assistantId": foreign_id}}),
        )
        .await;
    assert_eq!(error_fields(&refused), ["assistantId"]);
    let cleared = app
        .ok(
            update,
            json!({"id": sender, "input": {"assistantId": null}}),
        )
        .await;
    assert_eq!(cleared["updateSender"]["assistant"], Value::Null);
}

/// The README's Shop bot (issue 18): a contact's attributes reach its replies, and a value the
/// reply names but the customer lacks is never sent as a blank.
async fn replies_use_contact_attributes_and_never_send_a_hole(app: TestApp) {
    let sender = app.sandbox_sender("+14155550199").await;
    let assistant = app
        .assistant(json!({"name": "Shop bot", "provider": "SCRIPTED", "replyDebounceMs": 0,
            "scriptedRules": [
                {"pattern": "(?i)price", "reply": "The {{ plan }} plan is 10 EUR a month."},
                {"pattern": "(?i)tier", "reply": "{{ contact.name }}, you are on {{ contact.attributes.plan }}."},
                {"pattern": "(?i)hours", "reply": "We open at 9, {{ nickname | default('friend') }}."}]}))
        .await;
    use_assistant(&app, &sender, &assistant).await;
    for (phone, attributes) in [
        (CUSTOMER, json!({"plan": "silver"})),
        ("+14155550124", json!({})),
    ] {
        app.ok(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
            json!({"input": {"phone": phone, "name": "Ana", "attributes": attributes}}),
        )
        .await;
    }
    let silver = app
        .customer_writes(&sender, CUSTOMER, "what is the price?")
        .await;
    let silver = silver["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        waits_for_replies(&app, &silver, 1).await,
        ["The silver plan is 10 EUR a month."]
    );
    // One at a time: a burst is answered once, by the first rule matching it all.
    app.customer_writes(&sender, CUSTOMER, "which tier am I?")
        .await;
    waits_for_replies(&app, &silver, 2).await;
    app.customer_writes(&sender, CUSTOMER, "opening hours?")
        .await;
    assert_eq!(
        waits_for_replies(&app, &silver, 3).await,
        [
            "The silver plan is 10 EUR a month.",
            "Ana, you are on silver.",
            "We open at 9, friend."
        ]
    );

    // Without a plan the reply is not sent at all; the API answer names the rule and the value.
    let planless = app
        .customer_writes(&sender, "+14155550124", "what is the price?")
        .await;
    let planless = planless["conversation"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replies(&app, &planless).await, Vec::<String>::new());
    let refused = app
        .gql(
            "mutation($input: GenerateAiReplyInput!) { generateAiReply(input: $input) { reply } }",
            json!({"input": {"assistantId": assistant, "customerIdentifier": "crm-7", "message": "price?"}}),
        )
        .await;
    assert_eq!(error_code(&refused), Some("VALIDATION_FAILED"), "{refused}");
    assert_eq!(
        error_fields(&refused),
        ["scriptedRules[0].reply"],
        "{refused}"
    );
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("plan"), "{message}");
}

waflow_tests::on_both_databases!(
    replies_use_contact_attributes_and_never_send_a_hole,
    a_whatsapp_message_is_answered_through_the_provider,
    a_burst_is_answered_once,
    replies_come_one_at_a_time_in_order,
    a_human_takeover_stops_auto_reply,
    opted_out_customers_get_no_reply,
    a_failing_model_sends_the_fallback_reply,
    senders_name_assistants_of_their_workspace,
);
