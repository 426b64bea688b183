//! `send_text`: sends a text message.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Outcome, Simulation, StepContext, StepError, StepType, message_output, unsent_message,
};
use crate::{
    flows::validate::{Checks, Reference},
    messaging,
};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendText {
    pub sender_id: Uuid,
    pub to: String,
    pub text: String,
}

impl StepType for SendText {
    const TYPE: &'static str = "send_text";
    const SENDS_THROUGH_MESSAGING: bool = true;

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        checks.templates(path, &[("to", Some(&self.to)), ("text", Some(&self.text))]);
        checks.references.push(Reference::Sender {
            path: format!("{path}.senderId"),
            id: self.sender_id,
        });
    }

    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        let input = messaging::SendText {
            reply_to: None,
            sender_id: self.sender_id,
            to: cx.render("to", &self.to).await?,
            text: cx.render("text", &self.text).await?,
            idempotency_key: Some(cx.idempotency_key.clone()),
        };
        let sent = cx
            .services
            .messaging()
            .send_text(cx.workspace_id, input)
            .await?;
        message_output(&sent).map(Outcome::Output)
    }

    async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(unsent_message(cx))
    }
}
