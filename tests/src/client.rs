//! Speaking to the test's server: GraphQL documents with the workspace's key or another,
//! signed Meta webhooks, the reads many tests repeat, and the parts of a GraphQL error tests check.

use serde_json::{Value, json};

use crate::{TestApp, eventually, receivers::sign};

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs a GraphQL document with the test workspace's key; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.gql_as(Some(&self.key), query, variables).await
    }

    /// Runs a GraphQL document with another key (or none).
    pub async fn gql_as(&self, key: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON response")
    }

    /// Runs a document that must succeed; returns its `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Waits until the message WhatsApp calls `wamid` is stored; returns Waflow's id for it.
    pub async fn message_id_of(&self, wamid: &str) -> String {
        eventually(&format!("message {wamid} to be stored"), || async {
            let data = self
                .ok(
                    "{ conversations(first: 20) { edges { node { messages(first: 100) { edges { node { id providerMessageId } } } } } } }",
                    json!({}),
                )
                .await;
            data["conversations"]["edges"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["node"]["messages"]["edges"].as_array().cloned().unwrap_or_default())
                .find(|e| e["node"]["providerMessageId"] == wamid)
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        })
        .await
    }

    /// Delivers a webhook as Meta would, signed with `secret`; returns the HTTP status.
    pub async fn webhook(&self, body: &Value, secret: Option<&str>) -> u16 {
        let bytes = serde_json::to_vec(body).unwrap();
        let mut request = self
            .http
            .post(self.url("/webhooks/whatsapp"))
            .header("content-type", "application/json");
        if let Some(secret) = secret {
            request = request.header("x-hub-signature-256", sign(&bytes, secret));
        }
        request.body(bytes).send().await.unwrap().status().as_u16()
    }

    /// A conversation's messages as (role, body), oldest first.
    pub async fn conversation_messages(&self, conversation_id: &str) -> Vec<(String, String)> {
        let data = self
            .ok(
                "query($id: ID!) { conversation(id: $id) { messages(first: 100) { edges { node { role body } } } } }",
                json!({"id": conversation_id}),
            )
            .await;
        data["conversation"]["messages"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["node"]["role"].as_str().unwrap().to_owned(),
                    e["node"]["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Reads one message's status.
    pub async fn message_status(&self, id: &str) -> String {
        let data = self
            .ok(
                "query($id: ID!) { message(id: $id) { status } }",
                json!({"id": id}),
            )
            .await;
        data["message"]["status"].as_str().unwrap().to_owned()
    }
}

/// The `extensions.code` of a response's first error.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The fields a VALIDATION_FAILED error names.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"][0]["extensions"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
