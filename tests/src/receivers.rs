//! Endpoints the server calls out to for outgoing webhooks, and the signature both Meta's
//! webhooks and Waflow's deliveries carry.

use serde_json::{Value, json};

use crate::{TestApp, eventually};

/// A local endpoint registered for outgoing webhooks; it answers 200 to everything.
pub struct WebhookReceiver {
    pub server: wiremock::MockServer,
}

impl WebhookReceiver {
    /// Starts the receiver and registers it in `app`'s workspace for `events`.
    pub async fn register(app: &TestApp, events: Value) -> Self {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&server)
            .await;
        app.ok(
            "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { id } }",
            json!({"input": {"url": server.uri(), "events": events}}),
        )
        .await;
        Self { server }
    }

    /// The first delivery's JSON body, once it came.
    pub async fn first_delivery(&self, what: &str) -> Value {
        eventually(what, || async {
            let requests = self.server.received_requests().await.unwrap_or_default();
            requests
                .first()
                .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        })
        .await
    }
}

/// `X-Hub-Signature-256` of `body` under `secret`.
pub fn sign(body: &[u8], secret: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
