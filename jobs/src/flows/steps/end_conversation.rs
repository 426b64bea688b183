//! `end_conversation`: ends a conversation (by default the trigger's), as `endConversation`
//! does; ending one that has ended is not an error.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Outcome, Simulation, StepContext, StepError, StepType};
use crate::{Error, flows::validate::Checks};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndConversation {
    /// A template; defaults to the trigger's conversation.
    pub conversation_id: Option<String>,
}

impl StepType for EndConversation {
    const TYPE: &'static str = "end_conversation";

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        checks.templates(path, &[("conversationId", self.conversation_id.as_ref())]);
    }

    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        let source = self
            .conversation_id
            .as_deref()
            .unwrap_or("{{ trigger.conversation_id }}");
        let rendered = cx.render("conversationId", source).await?;
        let id = Uuid::parse_str(rendered.trim()).map_err(|_| {
            StepError::permanent(format!("conversationId: {rendered:?} is not an id"))
        })?;
        let output = match cx
            .services
            .messaging()
            .end_conversation(cx.workspace_id, id)
            .await
        {
            Ok(_) => json!({"conversation_id": id, "already_ended": false}),
            // Ending what has ended is what the step wants.
            Err(Error::Validation(_)) => json!({"conversation_id": id, "already_ended": true}),
            Err(e) => return Err(e.into()),
        };
        Ok(Outcome::Output(output))
    }

    async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(Outcome::Output(
            json!({"dry_run": true, "conversation_id": cx.input["conversationId"], "already_ended": false}),
        ))
    }
}
