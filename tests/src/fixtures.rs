//! What tests set up through the API before the part they test: workspaces, senders (sandbox or
//! Cloud API through the [`Meta`] stand-in), approved templates, assistants, a customer's
//! message; and the bodies Meta would send or require.

use serde_json::{Value, json};

use crate::{
    TestApp, eventually,
    stand_ins::meta::{ACCESS_TOKEN, APP_SECRET, BUSINESS_ACCOUNT_ID, Meta, VERIFY_TOKEN},
};

impl TestApp {
    /// Creates another workspace and returns its API key.
    pub async fn other_workspace(&self) -> String {
        let (_, key) = self
            .services
            .workspaces()
            .create("Other workspace")
            .await
            .unwrap();
        key.plaintext
    }

    /// Creates a SANDBOX sender and returns its id.
    pub async fn sandbox_sender(&self, phone: &str) -> String {
        let data = self
            .ok(
                "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
                json!({"input": {"phoneNumber": phone, "displayName": "Acme", "provider": "SANDBOX"}}),
            )
            .await;
        data["createSender"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a CLOUD_API sender that talks to `meta`, and waits until its status refresh made it
    /// ONLINE. Returns its id.
    pub async fn cloud_sender(&self, meta: &Meta, phone: &str, phone_number_id: &str) -> String {
        meta.number_is_connected(phone_number_id, "GREEN").await;
        let data = self
            .ok(
                "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
                json!({"input": {"phoneNumber": phone, "displayName": "Acme", "provider": "CLOUD_API",
                    "cloudApi": {"phoneNumberId": phone_number_id, "businessAccountId": BUSINESS_ACCOUNT_ID,
                        "accessToken": ACCESS_TOKEN, "appSecret": APP_SECRET, "verifyToken": VERIFY_TOKEN,
                        "apiBaseUrl": meta.base_url()}}}),
            )
            .await;
        let id = data["createSender"]["id"].as_str().unwrap().to_owned();
        eventually("the new sender's status refresh", || async {
            let data = self
                .ok(
                    "query($id: ID!) { sender(id: $id) { status } }",
                    json!({"id": id}),
                )
                .await;
            (data["sender"]["status"] == "ONLINE").then_some(())
        })
        .await;
        id
    }

    /// Points the Cloud API sender at another API address without the check `updateSender`
    /// makes (the new address may not answer at all).
    pub async fn move_sender_api(&self, sender_id: &str, base_url: &str) {
        use sea_orm::{ActiveModelTrait, Set};
        let sender = waflow_entities::sender::ActiveModel {
            id: Set(sender_id.parse().unwrap()),
            api_base_url: Set(Some(base_url.to_owned())),
            ..Default::default()
        };
        sender.update(&self.services.db).await.unwrap();
    }

    /// Runs `syncTemplates` for `sender_id`; returns how many templates it created.
    pub async fn sync_templates(&self, sender_id: &str) -> u64 {
        self.ok(
            "mutation($id: ID!) { syncTemplates(senderId: $id) { created } }",
            json!({"id": sender_id}),
        )
        .await["syncTemplates"]["created"]
            .as_u64()
            .unwrap()
    }

    /// Sends a text to `sender_id` as the customer `from`, through the sandbox.
    pub async fn customer_writes(&self, sender_id: &str, from: &str, text: &str) -> Value {
        let data = self
            .ok(
                "mutation($input: SimulateInboundMessageInput!) { simulateInboundMessage(input: $input) { \
                   id body status direction conversation { id messageCount } } }",
                json!({"input": {"senderId": sender_id, "from": from, "text": text, "name": "Ana"}}),
            )
            .await;
        data["simulateInboundMessage"].clone()
    }

    /// Creates a template for `sender_id` in English, with a sample per body placeholder, and
    /// approves it (the sandbox plays Meta's review); returns its id.
    pub async fn approved_template(
        &self,
        sender_id: &str,
        name: &str,
        category: &str,
        body: &str,
    ) -> String {
        let data = self
            .ok(
                "mutation($input: CreateTemplateInput!) { createTemplate(input: $input) { id } }",
                json!({"input": {"senderId": sender_id, "name": name, "language": "en", "category": category,
                       "components": {"body": body, "bodyExamples": body_examples(body)}}}),
            )
            .await;
        let id = data["createTemplate"]["id"].as_str().unwrap().to_owned();
        self.ok(
            "mutation($id: ID!) { setTemplateStatus(id: $id, status: APPROVED) { id } }",
            json!({"id": id}),
        )
        .await;
        id
    }

    /// Creates an assistant; returns its id.
    pub async fn assistant(&self, input: Value) -> String {
        let data = self
            .ok(
                "mutation($input: CreateAssistantInput!) { createAssistant(input: $input) { id } }",
                json!({"input": input}),
            )
            .await;
        data["createAssistant"]["id"].as_str().unwrap().to_owned()
    }
}

/// A sample value per placeholder of a template's `body`, as Meta's review requires.
pub fn body_examples(body: &str) -> Vec<String> {
    let count = waflow_jobs::placeholders::Placeholders::parse(body).map_or(0, |p| p.count());
    (1..=count).map(|n| format!("example {n}")).collect()
}

/// Meta's webhook envelope around one `messages` change for `phone_number_id`.
pub fn messages_webhook(phone_number_id: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({"display_phone_number": "14155550199", "phone_number_id": phone_number_id});
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": BUSINESS_ACCOUNT_ID, "changes": [{"field": "messages", "value": value}]}]})
}
