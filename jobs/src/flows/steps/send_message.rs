//! `send_message`: sends media, a location, reply buttons, a list or a reaction
//! (`content::rich_content`), written as `sendMessage`'s `content`
//! (`{"image": {"link": "…"}}`), every string a template.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Outcome, Simulation, StepContext, StepError, StepType, message_output, unsent_message,
};
use crate::{
    content::rich_content::MessageContent,
    flows::validate::{Checks, Reference},
    messaging,
};

/// The kinds of content, each the one key of `content`.
const KINDS: [&str; 9] = [
    "image", "video", "audio", "document", "sticker", "location", "buttons", "list", "reaction",
];

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessage {
    pub sender_id: Uuid,
    pub to: String,
    pub content: Value,
    /// The message answered (a Waflow message id, like `{{ trigger.message_id }}`).
    pub reply_to: Option<String>,
}

impl StepType for SendMessage {
    const TYPE: &'static str = "send_message";
    const SENDS_THROUGH_MESSAGING: bool = true;

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        checks.templates(
            path,
            &[("to", Some(&self.to)), ("replyTo", self.reply_to.as_ref())],
        );
        checks
            .sources
            .value(&format!("{path}.content"), &self.content);
        let one_kind = self
            .content
            .as_object()
            .is_some_and(|o| o.len() == 1 && o.keys().all(|k| KINDS.contains(&k.as_str())));
        checks.problems.check(
            one_kind,
            format!("{path}.content"),
            format!(
                "must be one of {}: {{\"image\": {{\"link\": \"…\"}}}}",
                KINDS.join(", ")
            ),
        );
        checks.references.push(Reference::Sender {
            path: format!("{path}.senderId"),
            id: self.sender_id,
        });
    }

    /// Renders the content's strings (a lone `{{ … }}` keeps its type, so a latitude can come
    /// from the trigger) and sends it. Content that is not one of `sendMessage`'s kinds once
    /// rendered fails the step for good.
    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        let rendered = cx.render_value("content", &self.content).await?;
        let content: MessageContent = serde_json::from_value(rendered).map_err(|e| {
            StepError::permanent(format!("VALIDATION_FAILED: content is not a message: {e}"))
        })?;
        let reply_to = match &self.reply_to {
            Some(source) => {
                let id = cx.render("replyTo", source).await?;
                Some(Uuid::parse_str(id.trim()).map_err(|_| {
                    StepError::permanent(format!(
                        "VALIDATION_FAILED: replyTo: {id:?} is not a message id"
                    ))
                })?)
            }
            None => None,
        };
        let input = messaging::SendMessage {
            sender_id: self.sender_id,
            to: cx.render("to", &self.to).await?,
            content,
            reply_to,
            idempotency_key: Some(cx.idempotency_key.clone()),
        };
        let sent = cx
            .services
            .messaging()
            .send_message(cx.workspace_id, input)
            .await?;
        message_output(&sent).map(Outcome::Output)
    }

    async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(unsent_message(cx))
    }
}
