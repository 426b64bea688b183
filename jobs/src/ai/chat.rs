//! A client for OpenAI-compatible Chat Completions endpoints (OpenAI, Azure OpenAI's v1 API,
//! vLLM, Ollama, llama.cpp's server). One request has a timeout; 429 and 5xx answers are retried
//! with exponential backoff, waiting at least what `Retry-After` asks; everything else becomes
//! PROVIDER_ERROR carrying the upstream HTTP status as its provider code.

use std::time::Duration;

use chrono::Utc;
use reqwest::{StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use waflow_entities::assistant;

use super::{ChatMessage, request_timeout};
use crate::{Services, error::Error, error::Result};

/// Attempts per completion: the first and three retries.
pub const MAX_ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts, whatever `Retry-After` says: a caller is waiting.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// How much of an upstream error body is kept in the error message.
const ERROR_EXCERPT_CHARS: usize = 300;

pub struct ChatClient<'a> {
    egress: &'a crate::egress::Egress,
    url: String,
    api_key: Option<String>,
    model: String,
    temperature: Option<f64>,
    max_tokens: Option<i32>,
    timeout: Duration,
}

/// The largest model answer read: far beyond any chat completion, far below a flood from a
/// base URL that answers without end.
const MAX_ANSWER: usize = 4 << 20;

impl<'a> ChatClient<'a> {
    pub fn for_assistant(services: &'a Services, a: &assistant::Model) -> Result<Self> {
        let (Some(base_url), Some(model)) = (&a.base_url, &a.model) else {
            return Err(Error::Internal(format!(
                "assistant {} has no baseUrl or model",
                a.id
            )));
        };
        let api_key = match &a.api_key_enc {
            Some(sealed) => Some(services.secrets.decrypt(sealed)?),
            None => None,
        };
        Ok(Self {
            egress: &services.egress,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            model: model.clone(),
            temperature: a.temperature,
            max_tokens: a.max_tokens,
            timeout: request_timeout(a),
        })
    }

    /// The model's answer to `messages`; with `response_format`, constrained to it.
    pub async fn complete(
        &self,
        messages: &[ChatMessage],
        response_format: Option<&Value>,
    ) -> Result<String> {
        let mut body = json!({"model": self.model, "messages": messages});
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = self.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if let Some(format) = response_format {
            body["response_format"] = format.clone();
        }
        let mut attempt = 1;
        loop {
            match self.attempt(&body).await {
                Outcome::Done(result) => return result,
                Outcome::Retry { error, wait } if attempt < MAX_ATTEMPTS => {
                    let wait = wait
                        .unwrap_or(FIRST_BACKOFF * 2u32.pow(attempt - 1))
                        .min(MAX_WAIT);
                    tracing::info!(%error, attempt, ?wait, "model request failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Outcome::Retry { error, .. } => return Err(error),
            }
        }
    }

    async fn attempt(&self, body: &Value) -> Outcome {
        let request = match self.egress.post(&self.url) {
            Ok(request) => request,
            Err(refused) => {
                let message = format!("cannot reach the model API: {refused}");
                return Outcome::Done(Err(Error::provider(None, message)));
            }
        };
        let mut request = request.timeout(self.timeout).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
            // Azure OpenAI takes its keys in a header of its own.
            if self.url.contains(".openai.azure.com/") {
                request = request.header("api-key", key);
            }
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Outcome::Done(Err(Error::provider(
                    None,
                    format!(
                        "the model did not answer within {} s",
                        self.timeout.as_secs()
                    ),
                )));
            }
            Err(e) => {
                return Outcome::Retry {
                    error: Error::provider(
                        None,
                        format!(
                            "cannot reach the model API: {}",
                            crate::egress::describe(&e)
                        ),
                    ),
                    wait: None,
                };
            }
        };
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = match crate::egress::read_capped(response, MAX_ANSWER).await {
            Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.is_timeout() => {
                return Outcome::Done(Err(Error::provider(
                    Some(status.as_u16().to_string()),
                    format!(
                        "the model did not answer within {} s",
                        self.timeout.as_secs()
                    ),
                )));
            }
            Err(e) => {
                return Outcome::Done(Err(Error::provider(
                    Some(status.as_u16().to_string()),
                    format!("the model's answer could not be read: {}", e.without_url()),
                )));
            }
        };
        if status.is_success() {
            return Outcome::Done(content_of(&text));
        }
        let error = Error::provider(
            Some(status.as_u16().to_string()),
            format!("the model API answered {status}: {}", excerpt(&text)),
        );
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Outcome::Retry { error, wait }
        } else {
            Outcome::Done(Err(error))
        }
    }
}

enum Outcome {
    Done(Result<String>),
    Retry {
        error: Error,
        wait: Option<Duration>,
    },
}

/// The first choice's text.
fn content_of(body: &str) -> Result<String> {
    let parsed: Value = serde_json::from_str(body).map_err(|_| {
        Error::provider(
            None,
            format!(
                "the model API answered with invalid JSON: {}",
                excerpt(body)
            ),
        )
    })?;
    parsed["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::provider(
                None,
                format!(
                    "the model's answer has no message content: {}",
                    excerpt(body)
                ),
            )
        })
}

/// The upstream's own error message when it sends one, else the start of the body.
fn excerpt(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    message.chars().take(ERROR_EXCERPT_CHARS).collect()
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(seconds) = value.trim().parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let later = (Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        headers.insert("retry-after", later.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn errors_quote_the_upstream_message() {
        assert_eq!(
            excerpt(r#"{"error":{"message":"model overloaded","type":"server_error"}}"#),
            "model overloaded"
        );
        assert_eq!(excerpt(" plain text "), "plain text");
        assert!(content_of(r#"{"choices":[]}"#).is_err());
        assert_eq!(
            content_of(r#"{"choices":[{"message":{"role":"assistant","content":"Hi"}}]}"#).unwrap(),
            "Hi"
        );
    }
}
