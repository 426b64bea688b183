//! Talking to models. An assistant answers with an OpenAI-compatible Chat Completions endpoint
//! ([`chat`]) or with offline regex rules ([`scripted`]); both see the same prompt ([`prompt`])
//! and the same post-conversation extraction fields ([`extraction`]). Nothing here touches the
//! database: the services decide what to ask and store what comes back.

pub mod chat;
pub mod extraction;
pub mod prompt;
pub mod scripted;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use waflow_entities::{assistant, enums::AssistantProvider};

use crate::{Services, assistants as settings, error::Result};

/// How much history goes to the model when the assistant does not say, in estimated tokens.
pub const DEFAULT_HISTORY_TOKEN_BUDGET: i32 = 3000;
/// How long auto-reply waits for the rest of a burst when the assistant does not say.
pub const DEFAULT_REPLY_DEBOUNCE_MS: i32 = 2000;
/// How long one model request may take when the assistant does not say.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: i32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

/// One message of a Chat Completions request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

pub fn history_token_budget(a: &assistant::Model) -> usize {
    a.history_token_budget
        .unwrap_or(DEFAULT_HISTORY_TOKEN_BUDGET)
        .max(1) as usize
}

pub fn reply_debounce(a: &assistant::Model) -> Duration {
    Duration::from_millis(
        a.reply_debounce_ms
            .unwrap_or(DEFAULT_REPLY_DEBOUNCE_MS)
            .max(0) as u64,
    )
}

pub fn request_timeout(a: &assistant::Model) -> Duration {
    Duration::from_secs(
        a.request_timeout_seconds
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECONDS)
            .max(1) as u64,
    )
}

/// What the conversation so far asks of the assistant.
pub struct ReplyRequest<'a> {
    /// The conversation's variables: input variables and the customer's name, phone, identifier.
    pub variables: &'a serde_json::Value,
    /// The conversation's messages, oldest first, ending with the customer's unanswered ones.
    pub history: Vec<ChatMessage>,
    /// The customer's unanswered messages, joined: what scripted rules match.
    pub unanswered: &'a str,
}

/// The assistant's answer to the conversation, or `None` when a scripted assistant has no rule
/// that matches and no fallback reply.
pub async fn reply(
    services: &Services,
    assistant: &assistant::Model,
    request: ReplyRequest<'_>,
) -> Result<Option<String>> {
    let templates = services.sandbox.for_workspace(assistant.workspace_id);
    match assistant.provider {
        AssistantProvider::Scripted => {
            scripted::reply(
                &templates,
                &settings::scripted_rules(assistant),
                assistant.fallback_reply.as_deref(),
                request.unanswered,
                request.variables,
            )
            .await
        }
        AssistantProvider::OpenaiCompatible => {
            let system = prompt::render_system_prompt(
                &templates,
                &assistant.system_prompt,
                request.variables,
            )
            .await?;
            let mut messages = Vec::with_capacity(request.history.len() + 1);
            if !system.trim().is_empty() {
                messages.push(ChatMessage::new(ChatRole::System, system));
            }
            messages.extend(prompt::bounded(
                request.history,
                history_token_budget(assistant),
            ));
            let client = chat::ChatClient::for_assistant(services, assistant)?;
            client.complete(&messages, None).await.map(Some)
        }
    }
}
