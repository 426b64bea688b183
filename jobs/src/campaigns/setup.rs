//! What a campaign is made of, checked before it is stored: the template must be sendable, the
//! variables must fit its placeholders, marketing must offer a way out, and the schedule must
//! make sense. Everything a user can get wrong is reported, by field, at creation, not halfway
//! through a send to thousands.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;
use waflow_entities::{
    campaign,
    enums::{ButtonType, QualityRating, TemplateCategory},
    template,
};

use super::window::{SendWindow, SendWindowSpec};
use crate::{
    contacts::ContactFilter,
    content::{
        template_components::Components,
        template_parameters::{self, TemplateParameters},
    },
    error::{Error, Result},
    messaging::match_variables,
    placeholders::Placeholders,
    sandbox::{SourceChecks, TemplateError, Templates},
    validation::Problems,
};

/// Most contacts a campaign may name one by one (a filter has no limit).
pub const MAX_CONTACT_IDS: usize = 100_000;
pub const DEFAULT_FAILURE_RATE_WINDOW: i32 = 50;
pub const DEFAULT_FAILURE_RATE_THRESHOLD: f64 = 0.2;

/// A campaign as a user describes it.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub sender_id: Uuid,
    pub template_name: String,
    pub language: String,
    /// A JSON array (positional placeholders) or object (named) of minijinja templates.
    pub variables: Option<Value>,
    /// The template's header and button parameters, each string a minijinja template.
    pub parameters: TemplateParameters,
    pub audience: Audience,
    pub start_at: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    pub send_window: Option<SendWindowSpec>,
    pub messages_per_second: Option<i32>,
    pub acknowledge_no_opt_out: bool,
    pub pause_on_quality: Option<QualityRating>,
    pub failure_rate_window: Option<i32>,
    pub failure_rate_threshold: Option<f64>,
}

/// Who a campaign goes to; stored as `{"contactIds": [...]}` or `{"filter": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Audience {
    ContactIds(Vec<Uuid>),
    Filter(AudienceFilter),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudienceFilter {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

impl AudienceFilter {
    pub fn contact_filter(&self) -> ContactFilter {
        ContactFilter {
            tags: self.tags.clone(),
            attributes: self.attributes.clone(),
            opted_out: None,
            search: None,
        }
    }
}

/// A campaign's variables, split the way a template send takes them: the body's, and the
/// header's and buttons' parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variables {
    pub positional: Vec<String>,
    pub named: BTreeMap<String, String>,
    pub parameters: TemplateParameters,
}

impl Variables {
    /// A stored campaign's variables and parameters.
    pub fn of_campaign(campaign: &campaign::Model) -> Result<Self> {
        let mut variables = Self::from_json(&campaign.variables)?;
        if let Some(stored) = &campaign.template_parameters {
            variables.parameters = serde_json::from_value(stored.clone()).map_err(|e| {
                Error::Internal(format!("stored campaign parameters are malformed: {e}"))
            })?;
        }
        Ok(variables)
    }

    /// Reads the stored or given JSON; `null` means none.
    pub fn from_json(value: &Value) -> Result<Self> {
        let text = |field: String, v: &Value| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                Error::field(
                    field,
                    "must be a string (a template such as \"{{ contact.name }}\")",
                )
            })
        };
        Ok(match value {
            Value::Null => Self::default(),
            Value::Array(items) => Self {
                positional: items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| text(format!("variables[{i}]"), v))
                    .collect::<Result<_>>()?,
                ..Self::default()
            },
            Value::Object(map) => Self {
                named: map
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), text(format!("variables.{k}"), v)?)))
                    .collect::<Result<_>>()?,
                ..Self::default()
            },
            _ => {
                return Err(Error::field(
                    "variables",
                    "must be a list (for {{1}}..{{n}}) or an object (for named placeholders)",
                ));
            }
        })
    }

    /// Each variable and parameter with the field a problem with it is reported at.
    fn fields(&self) -> Vec<(String, String)> {
        let positional = self
            .positional
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("variables[{i}]"), v.clone()));
        let named = self
            .named
            .iter()
            .map(|(k, v)| (format!("variables.{k}"), v.clone()));
        let mut parameters = self.parameters.clone();
        let parameters: Vec<(String, String)> = parameters
            .strings_mut()
            .into_iter()
            .map(|(at, v)| (at, v.clone()))
            .collect();
        positional.chain(named).chain(parameters).collect()
    }

    /// Renders every variable for one contact (`{"contact": {...}}`).
    pub async fn render(
        &self,
        templates: &Templates<'_>,
        context: &Value,
    ) -> Result<Self, TemplateError> {
        let mut rendered = Self::default();
        for source in &self.positional {
            rendered
                .positional
                .push(templates.render(source, context).await?);
        }
        for (name, source) in &self.named {
            let value = templates.render(source, context).await?;
            rendered.named.insert(name.clone(), value);
        }
        rendered.parameters = self.parameters.clone();
        for (_, value) in rendered.parameters.strings_mut() {
            *value = templates.render(value, context).await?;
        }
        Ok(rendered)
    }
}

/// The settings checked on their own, before the sender and template are looked up.
pub struct Checked {
    pub variables: Variables,
    pub window: Option<SendWindow>,
    pub timezone: String,
    pub pause_on_quality: QualityRating,
    pub failure_rate_window: i32,
    pub failure_rate_threshold: f64,
}

/// Checks what needs no lookup, reporting every problem at once.
pub async fn check(templates: &Templates<'_>, input: &NewCampaign) -> Result<Checked> {
    let mut problems = Problems::new();
    problems.text("name", &input.name, 200);
    let mut variables = match input.variables.as_ref().map(Variables::from_json) {
        None => Variables::default(),
        Some(Ok(v)) => v,
        Some(Err(Error::Validation(fields))) => {
            for f in fields {
                problems.add(f.field, f.message);
            }
            Variables::default()
        }
        Some(Err(other)) => return Err(other),
    };
    variables.parameters = input.parameters.clone();
    let mut sources = SourceChecks::default();
    for (field, source) in variables.fields() {
        sources.template(field, &source);
    }
    for (field, message) in sources.run(templates).await? {
        problems.add(field, message);
    }
    match &input.audience {
        Audience::ContactIds(ids) => problems.check(
            (1..=MAX_CONTACT_IDS).contains(&ids.len()),
            "audience.contactIds",
            format!("name 1 to {MAX_CONTACT_IDS} contacts"),
        ),
        Audience::Filter(filter) => {
            if let Err(Error::Validation(fields)) =
                crate::contacts::clean_tags(&filter.tags, "audience.filter.tags")
            {
                for f in fields {
                    problems.add(f.field, f.message);
                }
            }
        }
    }
    if let Some(rate) = input.messages_per_second {
        problems.range("messagesPerSecond", rate.into(), 1, 1000);
    }
    let failure_rate_window = input
        .failure_rate_window
        .unwrap_or(DEFAULT_FAILURE_RATE_WINDOW);
    problems.range("failureRateWindow", failure_rate_window.into(), 1, 10_000);
    let failure_rate_threshold = input
        .failure_rate_threshold
        .unwrap_or(DEFAULT_FAILURE_RATE_THRESHOLD);
    problems.check(
        (0.0..=1.0).contains(&failure_rate_threshold),
        "failureRateThreshold",
        "must be a fraction between 0 and 1 (0.2 pauses above 20% failures)",
    );
    let pause_on_quality = input.pause_on_quality.unwrap_or(QualityRating::Yellow);
    problems.check(
        matches!(pause_on_quality, QualityRating::Yellow | QualityRating::Red),
        "pauseOnQuality",
        "must be YELLOW (pause when quality drops to YELLOW or RED) or RED",
    );
    let timezone = input.timezone.clone().unwrap_or_else(|| "UTC".into());
    if let Err(Error::Validation(fields)) = super::window::parse_zone(&timezone) {
        for f in fields {
            problems.add(f.field, f.message);
        }
    }
    let window = match input.send_window.as_ref().map(SendWindow::parse) {
        None => None,
        Some(Ok(window)) => Some(window),
        Some(Err(Error::Validation(fields))) => {
            for f in fields {
                problems.add(f.field, f.message);
            }
            None
        }
        Some(Err(other)) => return Err(other),
    };
    problems.into_result()?;
    Ok(Checked {
        variables,
        window,
        timezone,
        pause_on_quality,
        failure_rate_window,
        failure_rate_threshold,
    })
}

/// The template accepts these variables (as written, before rendering), and a MARKETING one
/// offers a way to opt out unless the user acknowledged it does not.
pub fn check_template(
    template: &template::Model,
    variables: &Variables,
    acknowledge_no_opt_out: bool,
) -> Result<()> {
    let components = Components::from_json(&template.components)?;
    let placeholders = Placeholders::parse(&components.body)
        .map_err(|e| Error::Internal(format!("stored template body is invalid: {e}")))?;
    match_variables(
        template,
        &placeholders,
        &variables.positional,
        &variables.named,
    )?;
    // The values are templates until each recipient's are rendered: their presence and kinds
    // are checked here, Meta's limits on each recipient's values before their send.
    template_parameters::check_shape(&components, &variables.parameters)
        .map_err(|m| m.into_error(&template.name))?;
    if template.category == TemplateCategory::Marketing
        && !acknowledge_no_opt_out
        && !has_opt_out_hint(&components)
    {
        return Err(Error::field(
            "acknowledgeNoOptOut",
            format!(
                "MARKETING template {:?} offers no way to opt out (a quick-reply \"Stop\" button or a \
                 line mentioning STOP): customers who cannot stop messages report them, and the \
                 sender's quality drops. Add one, or set acknowledgeNoOptOut: true",
                template.name
            ),
        ));
    }
    Ok(())
}

/// A quick-reply button that stops messages, or a body or footer line that says how to.
fn has_opt_out_hint(components: &Components) -> bool {
    let says_stop = |text: &str| {
        let lower = text.to_lowercase();
        lower
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word == "stop" || word == "unsubscribe")
            || lower.contains("opt out")
            || lower.contains("opt-out")
    };
    components
        .buttons
        .iter()
        .any(|b| b.r#type == ButtonType::QuickReply && says_stop(&b.text))
        || says_stop(&components.body)
        || components.footer.as_deref().is_some_and(says_stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(body: &str, footer: Option<&str>, button: Option<&str>) -> Components {
        serde_json::from_value(serde_json::json!({
            "body": body, "footer": footer,
            "buttons": button.map(|t| vec![serde_json::json!({"type": "QUICK_REPLY", "text": t})]).unwrap_or_default(),
        }))
        .unwrap()
    }

    #[test]
    fn an_opt_out_hint_is_a_stop_button_or_a_stop_line() {
        assert!(has_opt_out_hint(&components(
            "Sale!",
            None,
            Some("Stop promotions")
        )));
        assert!(has_opt_out_hint(&components(
            "Sale!",
            Some("Reply STOP to opt out"),
            None
        )));
        assert!(has_opt_out_hint(&components(
            "Sale! Reply stop to unsubscribe.",
            None,
            None
        )));
        assert!(!has_opt_out_hint(&components(
            "Sale!",
            None,
            Some("Shop now")
        )));
        // "Non-stop deals" mentions no way to stop anything.
        assert!(!has_opt_out_hint(&components("Nonstop deals", None, None)));
    }

    #[tokio::test]
    async fn variables_render_per_contact_and_report_the_missing() {
        let sandbox = crate::sandbox::Sandbox::in_process();
        let templates = sandbox.for_workspace(uuid::Uuid::nil());
        let variables = Variables::from_json(&serde_json::json!([
            "{{ contact.name }}",
            "{{ contact.attributes.plan }}"
        ]))
        .unwrap();
        let ana = serde_json::json!({"contact": {"name": "Ana", "attributes": {"plan": "gold"}}});
        let rendered = variables.render(&templates, &ana).await.unwrap();
        assert_eq!(rendered.positional, ["Ana", "gold"]);
        let bare = serde_json::json!({"contact": {"name": "Bo", "attributes": {}}});
        let missing = variables.render(&templates, &bare).await.unwrap_err();
        assert!(missing.to_string().contains("contact.attributes.plan"));
        assert!(Variables::from_json(&serde_json::json!("x")).is_err());
        assert!(Variables::from_json(&serde_json::json!([1])).is_err());
    }
}
