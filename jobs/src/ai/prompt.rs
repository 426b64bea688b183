//! What a model is shown: the system prompt rendered over the conversation's variables, and as
//! much of the conversation as fits the assistant's budget, newest kept.

use serde_json::{Map, Value};
use waflow_entities::{
    contact, conversation,
    enums::{MessageKind, MessageRole},
    message,
};

use super::{ChatMessage, ChatRole};
use crate::{
    error::Result,
    sandbox::{TemplateError, Templates},
};

/// A template context for a conversation: its input variables; then `customer_name`,
/// `customer_phone`, `customer_username` and `customer_identifier` where they are known and not
/// given; then the contact as `contact` (`name`, `phone`, `attributes`) and each of its
/// attributes by name (`{{ plan }}`) where no variable has that name.
pub fn variables(conversation: &conversation::Model, contact: Option<&contact::Model>) -> Value {
    let mut vars = match &conversation.input_variables {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Some(contact) = contact {
        vars.entry("contact").or_insert_with(|| {
            serde_json::json!({"name": contact.name, "phone": contact.phone,
                "attributes": contact.attributes})
        });
    }
    let known = [
        ("customer_name", contact.and_then(|c| c.name.clone())),
        ("customer_phone", contact.and_then(|c| c.phone.clone())),
        (
            "customer_username",
            contact.and_then(|c| c.username.clone()),
        ),
        (
            "customer_identifier",
            conversation
                .customer_identifier
                .clone()
                .or_else(|| contact.map(contact::Model::address)),
        ),
    ];
    for (name, value) in known {
        if let Some(value) = value {
            vars.entry(name).or_insert(Value::String(value));
        }
    }
    if let Some(Value::Object(attributes)) = contact.map(|c| &c.attributes) {
        for (name, value) in attributes {
            vars.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    Value::Object(vars)
}

/// Renders a prompt or reply template (minijinja, in the sandbox) over `vars`; the problem is
/// reported on `field`. A value the template names but `vars` lacks is that problem: a reply is
/// not sent with a hole where the value should be (`{{ plan | default('basic') }}` says what
/// to write instead).
pub async fn render(
    templates: &Templates<'_>,
    field: &str,
    template: &str,
    vars: &Value,
) -> Result<String> {
    templates
        .render(template, vars)
        .await
        .map_err(|e: TemplateError| e.on_field(field))
}

pub async fn render_system_prompt(
    templates: &Templates<'_>,
    template: &str,
    vars: &Value,
) -> Result<String> {
    render(templates, "systemPrompt", template, vars).await
}

/// The conversation's messages as chat messages: the customer's as `user`, the assistant's and
/// agents' as `assistant`. A message without text (an image without caption) is shown by kind.
pub fn history(messages: &[message::Model]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| {
            let role = match m.role {
                MessageRole::Customer => ChatRole::User,
                MessageRole::Assistant | MessageRole::Agent => ChatRole::Assistant,
                MessageRole::System => ChatRole::System,
            };
            let content = match (&m.body, m.kind) {
                (Some(body), _) => body.clone(),
                (None, MessageKind::Text) => String::new(),
                (None, kind) => format!("[{}]", format!("{kind:?}").to_lowercase()),
            };
            ChatMessage::new(role, content)
        })
        .filter(|m| !m.content.is_empty())
        .collect()
}

/// A rough token count (four characters a token, plus the message's framing): enough to keep a
/// request within a model's context without a tokenizer per model.
pub fn estimate_tokens(message: &ChatMessage) -> usize {
    message.content.chars().count().div_ceil(4) + 4
}

/// The newest messages whose estimated tokens fit `budget`, oldest first. The newest message is
/// always kept: it is the one to answer.
pub fn bounded(history: Vec<ChatMessage>, budget: usize) -> Vec<ChatMessage> {
    let mut used = 0;
    let mut keep = history.len();
    for (i, message) in history.iter().enumerate().rev() {
        used += estimate_tokens(message);
        if used > budget && i + 1 < history.len() {
            break;
        }
        keep = i;
    }
    history.into_iter().skip(keep).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> ChatMessage {
        ChatMessage::new(ChatRole::User, text)
    }

    #[test]
    fn bounded_keeps_the_newest_that_fit() {
        // Each message of 8 characters is 2 + 4 = 6 tokens.
        let history = vec![user("aaaaaaaa"), user("bbbbbbbb"), user("cccccccc")];
        assert_eq!(bounded(history.clone(), 12), history[1..].to_vec());
        assert_eq!(bounded(history.clone(), 100), history);
        // The message to answer stays even when it alone is over the budget.
        assert_eq!(bounded(history.clone(), 1), history[2..].to_vec());
    }

    #[tokio::test]
    async fn system_prompt_renders_variables_and_reports_errors() {
        let sandbox = crate::sandbox::Sandbox::in_process();
        let templates = sandbox.for_workspace(uuid::Uuid::nil());
        let vars = serde_json::json!({"customer_name": "Ada", "plan": "pro"});
        let prompt = "Help {{ customer_name }} on {{ plan }}.";
        assert_eq!(
            render_system_prompt(&templates, prompt, &vars)
                .await
                .unwrap(),
            "Help Ada on pro."
        );
        let bad = "{{ customer_name | nosuchfilter }}";
        let err = render_system_prompt(&templates, bad, &vars)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "VALIDATION_FAILED");
    }
}
