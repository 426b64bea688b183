//! `generate_ai_reply`: an assistant answers a customer's message (and sends its reply, as the
//! `generateAiReply` mutation does).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Outcome, Simulation, StepContext, StepError, StepType};
use crate::{
    flows::validate::{Checks, Reference},
    messaging::ai_replies,
};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerateAiReply {
    pub assistant_id: Uuid,
    pub customer_identifier: String,
    pub message: String,
    #[serde(default)]
    pub variables: Map<String, Value>,
}

impl StepType for GenerateAiReply {
    const TYPE: &'static str = "generate_ai_reply";

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        checks.templates(
            path,
            &[
                ("customerIdentifier", Some(&self.customer_identifier)),
                ("message", Some(&self.message)),
            ],
        );
        let variables = Value::Object(self.variables.clone());
        checks
            .sources
            .value(&format!("{path}.variables"), &variables);
        checks.references.push(Reference::Assistant {
            path: format!("{path}.assistantId"),
            id: self.assistant_id,
        });
    }

    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        let input = ai_replies::GenerateAiReply {
            assistant_id: self.assistant_id,
            customer_identifier: cx
                .render("customerIdentifier", &self.customer_identifier)
                .await?,
            message: cx.render("message", &self.message).await?,
            variables: Some(
                cx.render_value("variables", &Value::Object(self.variables.clone()))
                    .await?,
            ),
        };
        let answer = cx
            .services
            .ai_replies()
            .generate(cx.workspace_id, input)
            .await?;
        Ok(Outcome::Output(json!({
            "reply": answer.reply,
            "conversation_id": answer.conversation.id,
            "message_id": answer.reply_message.map(|m| m.id),
            "ai_disabled": answer.ai_disabled,
        })))
    }

    async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(Outcome::Output(
            json!({"dry_run": true, "reply": "(the assistant's reply)", "conversation_id": null,
                "message_id": null, "ai_disabled": false, "request": cx.input}),
        ))
    }
}
