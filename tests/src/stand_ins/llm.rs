//! A local stand-in for an OpenAI-compatible model, for assistants, AI replies and evaluations.

use serde_json::{Value, json};

/// A local stand-in for an OpenAI-compatible Chat Completions API (`POST /v1/chat/completions`).
pub struct Llm {
    pub server: wiremock::MockServer,
}

/// The key assistants in tests use for the stand-in model.
pub const LLM_KEY: &str = "sk-test-llm-key";

impl Llm {
    pub async fn start() -> Self {
        Self {
            server: wiremock::MockServer::start().await,
        }
    }

    /// The `baseUrl` an assistant uses to reach this stand-in.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.uri())
    }

    /// A Chat Completions answer whose first choice says `content`.
    pub fn completion(content: &str) -> wiremock::ResponseTemplate {
        wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000, "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }))
    }

    /// Every chat request (not an evaluation) is answered with `content`.
    pub async fn replies(&self, content: &str) {
        self.replies_with(Self::completion(content)).await;
    }

    /// Every chat request (not an evaluation) is answered with `response`.
    pub async fn replies_with(&self, response: wiremock::ResponseTemplate) {
        use wiremock::matchers::{method, path};
        wiremock::Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(NoResponseFormat)
            .respond_with(response)
            .mount(&self.server)
            .await;
    }

    /// Evaluation requests (those with a `response_format`) are answered with `content`.
    pub async fn evaluates(&self, content: &str) {
        use wiremock::matchers::{body_string_contains, method, path};
        wiremock::Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_string_contains("response_format"))
            .respond_with(Self::completion(content))
            .mount(&self.server)
            .await;
    }

    /// The JSON bodies of the chat requests received, oldest first; `evaluations` picks those
    /// with a `response_format` instead of the others.
    pub async fn bodies(&self, evaluations: bool) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == "/v1/chat/completions")
            .map(|r| serde_json::from_slice::<Value>(&r.body).expect("a JSON request"))
            .filter(|body| body.get("response_format").is_some() == evaluations)
            .collect()
    }

    /// The `Authorization` headers of every request received.
    pub async fn authorizations(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| {
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// Matches chat requests that are not evaluations.
struct NoResponseFormat;

impl wiremock::Match for NoResponseFormat {
    fn matches(&self, request: &wiremock::Request) -> bool {
        serde_json::from_slice::<Value>(&request.body)
            .is_ok_and(|body| body.get("response_format").is_none())
    }
}

/// The `messages` of a chat request as (role, content) pairs.
pub fn chat_messages(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
