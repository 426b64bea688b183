//! A local stand-in for Meta's WhatsApp Cloud API (Graph API v21.0): a sender created with
//! [`TestApp::cloud_sender`](crate::TestApp::cloud_sender) talks to it, and it refuses the
//! messages Meta refuses ([`meta_rules`]).

use serde_json::{Value, json};

use super::meta_rules;

/// Credentials of the Cloud API senders tests create.
pub const ACCESS_TOKEN: &str = "EAAG-test-access-token";
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const BUSINESS_ACCOUNT_ID: &str = "WABA-1";

/// A local stand-in for Meta's Graph API that speaks its wire format and refuses the messages
/// Meta refuses (`meta_rules`), checking templates against those it lists.
pub struct Meta {
    pub server: wiremock::MockServer,
    /// What `lists_templates` listed: the business account's templates.
    templates: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Meta {
    pub async fn start() -> Self {
        Self {
            server: wiremock::MockServer::start().await,
            templates: Default::default(),
        }
    }

    /// The `apiBaseUrl` a sender uses to reach this stand-in.
    pub fn base_url(&self) -> String {
        format!("{}/v21.0", self.server.uri())
    }

    /// Answers `GET /{phone_number_id}` like Meta for a healthy number.
    pub async fn number_is_connected(&self, phone_number_id: &str, quality: &str) {
        use wiremock::matchers::{header, method, path};
        wiremock::Mock::given(method("GET"))
            .and(path(format!("/v21.0/{phone_number_id}")))
            .and(header("authorization", format!("Bearer {ACCESS_TOKEN}").as_str()))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
                "verified_name": "Acme", "display_phone_number": "+1 415-555-0199", "quality_rating": quality,
                "status": "CONNECTED", "messaging_limit_tier": "TIER_1K", "name_status": "APPROVED", "id": phone_number_id
            })))
            .mount(&self.server)
            .await;
    }

    /// Accepts every message sent through `phone_number_id` that Meta would accept, each with a
    /// fresh `wamid`, answering as Meta does (`contacts[].input` and `wa_id` echo the `to`);
    /// refuses the others with Meta's error (`meta_rules`).
    pub async fn accepts_messages(&self, phone_number_id: &str) {
        use wiremock::matchers::{method, path};
        struct Accepts(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);
        impl wiremock::Respond for Accepts {
            fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
                let body = serde_json::from_slice::<Value>(&request.body).unwrap_or_default();
                let templates = self.0.lock().unwrap().clone();
                if let Some(refusal) = meta_rules::refusal(&body, &templates) {
                    return wiremock::ResponseTemplate::new(meta_rules::status(&refusal))
                        .set_body_json(refusal);
                }
                let to = body["to"].clone();
                wiremock::ResponseTemplate::new(200).set_body_json(json!({
                    "messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": format!("wamid.ACCEPTED-{}", uuid::Uuid::now_v7().simple())}]}))
            }
        }
        wiremock::Mock::given(method("POST"))
            .and(path(format!("/v21.0/{phone_number_id}/messages")))
            .respond_with(Accepts(self.templates.clone()))
            .mount(&self.server)
            .await;
    }

    /// Lists `templates` (entries of `GET /{waba-id}/message_templates`) to every sync; sends
    /// are checked against them.
    pub async fn lists_templates(&self, templates: Value) {
        use wiremock::matchers::{method, path};
        self.templates
            .lock()
            .unwrap()
            .extend(templates.as_array().cloned().unwrap_or_default());
        wiremock::Mock::given(method("GET"))
            .and(path(format!(
                "/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates"
            )))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
                json!({"data": templates, "paging": {"cursors": {"before": "a", "after": "b"}}}),
            ))
            .mount(&self.server)
            .await;
    }

    /// The requests the stand-in received with `method` whose path ends with `suffix`.
    pub async fn requests(&self, method: &str, suffix: &str) -> Vec<wiremock::Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == method && r.url.path().ends_with(suffix))
            .collect()
    }
}

/// A Meta error body as the Cloud API sends it.
pub fn meta_error(code: i64, message: &str) -> Value {
    json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": format!("{message} (details)")},
        "fbtrace_id": "AbCdEf"}})
}
