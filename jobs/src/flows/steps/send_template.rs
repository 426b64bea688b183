//! `send_template`: sends an approved template, its variables and the header's and buttons'
//! parameters rendered over the run's context.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Outcome, Simulation, StepContext, StepError, StepType, message_output, unsent_message,
};
use crate::{
    content::template_parameters::{ButtonParameter, HeaderParameter, TemplateParameters},
    flows::validate::{Checks, Reference},
    messaging::{self, TemplateRef},
};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendTemplate {
    pub sender_id: Uuid,
    pub template: String,
    pub language: String,
    pub to: String,
    #[serde(default)]
    pub variables: TemplateVariables,
    pub recipient_name: Option<String>,
    /// The header's parameter (`{"image": {"link": "{{trigger.photo}}"}}`), see
    /// `content::template_parameters`.
    pub header: Option<HeaderParameter>,
    /// The buttons' parameters (`[{"index": 0, "text": "{{trigger.order_id}}"}]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<ButtonParameter>,
}

/// Template values are either `{{1}}`..`{{n}}` in order or named.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TemplateVariables {
    Positional(Vec<String>),
    Named(BTreeMap<String, String>),
}

impl Default for TemplateVariables {
    fn default() -> Self {
        TemplateVariables::Positional(Vec::new())
    }
}

impl TemplateVariables {
    /// Each value with its field, like `variables[0]` or `variables.name`.
    fn fields(&self) -> Vec<(String, &String)> {
        match self {
            TemplateVariables::Positional(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("variables[{i}]"), v))
                .collect(),
            TemplateVariables::Named(map) => map
                .iter()
                .map(|(k, v)| (format!("variables.{k}"), v))
                .collect(),
        }
    }
}

impl SendTemplate {
    fn parameters(&self) -> TemplateParameters {
        TemplateParameters {
            header: self.header.clone(),
            buttons: self.buttons.clone(),
        }
    }
}

impl StepType for SendTemplate {
    const TYPE: &'static str = "send_template";
    const SENDS_THROUGH_MESSAGING: bool = true;

    fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        checks.templates(
            path,
            &[
                ("to", Some(&self.to)),
                ("recipientName", self.recipient_name.as_ref()),
            ],
        );
        let mut parameters = self.parameters();
        for (at, value) in parameters.strings_mut() {
            checks.sources.template(format!("{path}.{at}"), value);
        }
        for (at, value) in self.variables.fields() {
            checks.sources.template(format!("{path}.{at}"), value);
        }
        checks.references.push(Reference::Sender {
            path: format!("{path}.senderId"),
            id: self.sender_id,
        });
        checks.references.push(Reference::Template {
            path: format!("{path}.template"),
            sender: self.sender_id,
            name: self.template.clone(),
            language: self.language.clone(),
        });
    }

    /// Renders every field, the header's and buttons' parameters included, and sends.
    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        let mut parameters = self.parameters();
        for (at, value) in parameters.strings_mut() {
            *value = cx.render(&at, value).await?;
        }
        let mut positional = Vec::new();
        let mut named = BTreeMap::new();
        match &self.variables {
            TemplateVariables::Positional(list) => {
                for (i, v) in list.iter().enumerate() {
                    positional.push(cx.render(&format!("variables[{i}]"), v).await?);
                }
            }
            TemplateVariables::Named(map) => {
                for (k, v) in map {
                    named.insert(k.clone(), cx.render(&format!("variables.{k}"), v).await?);
                }
            }
        }
        let recipient_name = match &self.recipient_name {
            Some(n) => Some(cx.render("recipientName", n).await?),
            None => None,
        };
        let input = messaging::SendTemplate {
            sender_id: self.sender_id,
            template: TemplateRef::Name {
                name: self.template.clone(),
                language: self.language.clone(),
            },
            to: cx.render("to", &self.to).await?,
            recipient_name,
            variables: positional,
            named_variables: named,
            parameters,
            idempotency_key: Some(cx.idempotency_key.clone()),
        };
        let sent = cx
            .services
            .messaging()
            .send_template(cx.workspace_id, input)
            .await?;
        message_output(&sent).map(Outcome::Output)
    }

    async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError> {
        Ok(unsent_message(cx))
    }
}
