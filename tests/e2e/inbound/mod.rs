//! Real WhatsApp traffic in: every message type Meta sends keeps its content, system notices
//! are not the customer talking, ad attribution is kept, username customers are customers, and
//! what cannot be read is kept as a dead letter. Each test runs on both databases.

mod content;
mod costs;
mod dead_letters;
mod notices;
mod usernames;

use serde_json::{Value, json};
use waflow_tests::{APP_SECRET, Meta, TestApp, WebhookReceiver, eventually, messages_webhook};

use crate::flows::live_flow;

pub const PN: &str = "PN-INBOUND";

/// A business as the user has it: a Cloud API sender that auto-replies through a
/// scripted assistant, a flow on `message_received`, and an endpoint for outgoing webhooks.
pub struct Shop {
    pub meta: Meta,
    pub sender: String,
    pub flow: String,
    pub hooks: WebhookReceiver,
}

impl Shop {
    pub async fn open(app: &TestApp) -> Self {
        let meta = Meta::start().await;
        meta.accepts_messages(PN).await;
        let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
        let assistant = app
            .assistant(
                json!({"name": "Echo", "provider": "SCRIPTED", "replyDebounceMs": 0,
                              "fallbackReply": "Thanks, we got it."}),
            )
            .await;
        app.ok(
            "mutation($id: ID!, $input: UpdateSenderInput!) { updateSender(id: $id, input: $input) { id } }",
            json!({"id": sender, "input": {"assistantId": assistant}}),
        )
        .await;
        let (flow, _) = live_flow(
            app,
            json!({"trigger": {"type": "message_received", "senderId": sender},
                   "steps": [{"id": "note", "type": "set_variables",
                              "values": {"seen": "{{ trigger.message }}"}}]}),
        )
        .await;
        let hooks = WebhookReceiver::register(
            app,
            json!([
                "MESSAGE_RECEIVED",
                "CONVERSATION_STARTED",
                "CONTACT_IDENTITY_CHANGED"
            ]),
        )
        .await;
        Self {
            meta,
            sender,
            flow,
            hooks,
        }
    }

    /// Delivers a signed `messages` change; Meta must hear 200.
    pub async fn deliver(&self, app: &TestApp, value: Value) {
        let body = messages_webhook(PN, value);
        assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 200, "{body}");
    }

    /// The trigger payloads of the flow's runs, oldest first.
    pub async fn triggers(&self, app: &TestApp) -> Vec<Value> {
        let data = app
            .ok(
                "query($f: ID!) { flowRuns(flowId: $f, first: 50) { edges { node { createdAt trigger } } } }",
                json!({"f": self.flow}),
            )
            .await;
        let mut runs: Vec<Value> = data["flowRuns"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        runs.sort_by_key(|r| r["createdAt"].as_str().unwrap_or_default().to_owned());
        runs.into_iter().map(|r| r["trigger"].clone()).collect()
    }

    /// Waits for `n` runs; returns their triggers.
    pub async fn wait_triggers(&self, app: &TestApp, n: usize) -> Vec<Value> {
        eventually(&format!("{n} runs"), || async {
            let found = self.triggers(app).await;
            (found.len() >= n).then_some(found)
        })
        .await
    }

    /// The bodies of the outgoing webhook deliveries named `event`.
    pub async fn deliveries(&self, event: &str) -> Vec<Value> {
        self.hooks
            .server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .filter(|b| b["event"] == event)
            .collect()
    }

    /// Waits for `n` deliveries of `event`.
    pub async fn wait_deliveries(&self, event: &str, n: usize) -> Vec<Value> {
        eventually(&format!("{n} {event} deliveries"), || async {
            let found = self.deliveries(event).await;
            (found.len() >= n).then_some(found)
        })
        .await
    }

    /// The bodies of the messages Meta was asked to send.
    pub async fn sent(&self) -> Vec<Value> {
        self.meta
            .requests("POST", &format!("/{PN}/messages"))
            .await
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .collect()
    }
}

/// Every message of the workspace, oldest first, with its conversation's id.
pub async fn messages(app: &TestApp) -> Vec<Value> {
    let data = app
        .ok(
            "{ conversations(first: 20) { edges { node { id referral messages(first: 100) { edges { node {
                direction role kind body payload providerMessageId createdAt } } } } } } }",
            json!({}),
        )
        .await;
    let mut all = Vec::new();
    for conversation in data["conversations"]["edges"].as_array().unwrap() {
        for m in conversation["node"]["messages"]["edges"]
            .as_array()
            .unwrap()
        {
            let mut m = m["node"].clone();
            m["conversationId"] = conversation["node"]["id"].clone();
            all.push(m);
        }
    }
    all.sort_by_key(|m| m["createdAt"].as_str().unwrap_or_default().to_owned());
    all
}

/// The workspace's contacts.
pub async fn contacts(app: &TestApp) -> Vec<Value> {
    app.ok(
        "{ contacts(first: 20) { edges { node { id phone waId userId username name optedOut } } } }",
        json!({}),
    )
    .await["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// A `messages` change of one item from `wa_id`, with the customer's profile.
pub fn from_customer(wa_id: &str, item: Value) -> Value {
    let mut item = item;
    item["from"] = json!(wa_id);
    if item.get("timestamp").is_none() {
        item["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
    }
    json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}], "messages": [item]})
}
