//! Assistants: the AI that answers customers, either any OpenAI-compatible chat model or
//! offline scripted rules. This module owns their configuration; `ai_replies` answers with them
//! and `evaluation` extracts variables when their conversations end.

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use waflow_entities::{
    assistant,
    enums::{AssistantProvider, ExtractionType},
};

use crate::context::{Services, find_in_workspace};
use crate::{
    egress::{same_origin, secret_stays_home},
    error::{Error, Result},
    pagination::{Page, PageRequest, paginate},
    sandbox::{SourceChecks, Templates},
    validation::Problems,
};

/// A variable the post-conversation evaluation extracts from the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractionField {
    pub name: String,
    pub r#type: ExtractionType,
    pub description: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
    pub pattern: Option<String>,
}

/// A scripted reply: the first rule whose regex matches the customer's message answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptedRule {
    pub pattern: String,
    pub reply: String,
}

/// Every setting of an assistant; `create` takes it whole, `update` merges it over the stored one.
#[derive(Debug, Clone, Default)]
pub struct AssistantSettings {
    pub name: Option<String>,
    pub provider: Option<AssistantProvider>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i32>,
    pub system_prompt: Option<String>,
    pub extraction_fields: Option<Vec<ExtractionField>>,
    pub scripted_rules: Option<Vec<ScriptedRule>>,
    pub fallback_reply: Option<String>,
    pub evaluation_enabled: Option<bool>,
    pub history_token_budget: Option<i32>,
    pub reply_debounce_ms: Option<i32>,
    pub request_timeout_seconds: Option<i32>,
}

pub struct AssistantService<'a> {
    pub(crate) services: &'a Services,
}

impl Services {
    pub fn assistants(&self) -> AssistantService<'_> {
        AssistantService { services: self }
    }
}

fn check_regex(problems: &mut Problems, field: &str, pattern: &str) {
    if let Err(e) = regex::Regex::new(pattern) {
        problems.add(field, format!("is not a valid regular expression: {e}"));
    }
}

/// Validates the complete configuration an assistant would have after a create or update.
async fn validate(
    egress: &crate::egress::Egress,
    templates: &Templates<'_>,
    a: &assistant::Model,
    fields: &[ExtractionField],
    rules: &[ScriptedRule],
) -> Result<()> {
    // The templates are compiled first, in one request, and their problems reported where
    // they belong among the others.
    let mut sources = SourceChecks::default();
    sources.template("systemPrompt", &a.system_prompt);
    if let Some(fallback) = &a.fallback_reply {
        sources.template("fallbackReply", fallback);
    }
    for (i, rule) in rules.iter().enumerate() {
        sources.template(format!("scriptedRules[{i}].reply"), &rule.reply);
    }
    let mut template_problems: std::collections::HashMap<String, String> =
        sources.run(templates).await?.into_iter().collect();
    let mut template = |problems: &mut Problems, field: &str| {
        if let Some(problem) = template_problems.remove(field) {
            problems.add(field, problem);
        }
    };
    let mut problems = Problems::new();
    problems.text("name", &a.name, 200);
    if a.provider == AssistantProvider::OpenaiCompatible {
        match &a.base_url {
            Some(url) => problems.outgoing_url(egress, "baseUrl", url),
            None => problems.add("baseUrl", "is required for an OPENAI_COMPATIBLE assistant"),
        }
        match &a.model {
            Some(model) => problems.text("model", model, 200),
            None => problems.add("model", "is required for an OPENAI_COMPATIBLE assistant"),
        }
    }
    if let Some(t) = a.temperature {
        problems.check(
            (0.0..=2.0).contains(&t),
            "temperature",
            "must be between 0 and 2",
        );
    }
    if let Some(m) = a.max_tokens {
        problems.range("maxTokens", m.into(), 1, 1_000_000);
    }
    if let Some(v) = a.history_token_budget {
        problems.range("historyTokenBudget", v.into(), 100, 1_000_000);
    }
    if let Some(v) = a.reply_debounce_ms {
        problems.range("replyDebounceMs", v.into(), 0, 60_000);
    }
    if let Some(v) = a.request_timeout_seconds {
        problems.range("requestTimeoutSeconds", v.into(), 1, 600);
    }
    template(&mut problems, "systemPrompt");
    template(&mut problems, "fallbackReply");
    let mut names = HashSet::new();
    for (i, field) in fields.iter().enumerate() {
        let path = |name: &str| format!("extractionFields[{i}].{name}");
        let valid_name = !field.name.is_empty()
            && field
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !field.name.starts_with(|c: char| c.is_ascii_digit());
        problems.check(
            valid_name,
            path("name"),
            "must be letters, digits and underscores",
        );
        problems.check(
            names.insert(field.name.as_str()),
            path("name"),
            "is used by another field",
        );
        problems.check(
            field.r#type != ExtractionType::Enum || !field.options.is_empty(),
            path("options"),
            "are required for an ENUM field",
        );
        if let Some(pattern) = &field.pattern {
            check_regex(&mut problems, &path("pattern"), pattern);
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        check_regex(
            &mut problems,
            &format!("scriptedRules[{i}].pattern"),
            &rule.pattern,
        );
        template(&mut problems, &format!("scriptedRules[{i}].reply"));
    }
    if a.provider == AssistantProvider::Scripted {
        problems.check(
            !rules.is_empty() || a.fallback_reply.is_some(),
            "scriptedRules",
            "a SCRIPTED assistant needs at least one rule or a fallbackReply",
        );
    }
    problems.into_result()
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("assistant settings serialize")
}

pub fn extraction_fields(a: &assistant::Model) -> Vec<ExtractionField> {
    serde_json::from_value(a.extraction_fields.clone()).unwrap_or_default()
}

pub fn scripted_rules(a: &assistant::Model) -> Vec<ScriptedRule> {
    serde_json::from_value(a.scripted_rules.clone()).unwrap_or_default()
}

fn non_empty(value: String) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

impl AssistantService<'_> {
    pub async fn create(
        &self,
        workspace_id: Uuid,
        settings: AssistantSettings,
    ) -> Result<assistant::Model> {
        let now = Utc::now();
        let blank = assistant::Model {
            id: Uuid::now_v7(),
            workspace_id,
            name: String::new(),
            provider: settings.provider.unwrap_or(AssistantProvider::Scripted),
            base_url: None,
            model: None,
            api_key_enc: None,
            temperature: None,
            max_tokens: None,
            system_prompt: String::new(),
            extraction_fields: serde_json::json!([]),
            scripted_rules: serde_json::json!([]),
            fallback_reply: None,
            evaluation_enabled: false,
            history_token_budget: None,
            reply_debounce_ms: None,
            request_timeout_seconds: None,
            created_at: now,
            updated_at: now,
        };
        let model = self.apply(blank, settings).await?;
        Ok(assistant::ActiveModel::from(model)
            .reset_all()
            .insert(&self.services.db)
            .await?)
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        settings: AssistantSettings,
    ) -> Result<assistant::Model> {
        let current = self.get(workspace_id, id).await?;
        let mut model = self.apply(current, settings).await?;
        model.updated_at = Utc::now();
        Ok(assistant::ActiveModel::from(model)
            .reset_all()
            .update(&self.services.db)
            .await?)
    }

    /// Merges `s` over `a` and validates the result as a whole (a provider switch must bring the
    /// settings the new provider needs).
    async fn apply(
        &self,
        mut a: assistant::Model,
        s: AssistantSettings,
    ) -> Result<assistant::Model> {
        if let Some(v) = s.name {
            a.name = v.trim().to_owned();
        }
        if let Some(v) = s.provider {
            a.provider = v;
        }
        if let Some(v) = s.base_url {
            let base_url = non_empty(v);
            if a.api_key_enc.is_some()
                && s.api_key.is_none()
                && !same_origin(a.base_url.as_deref(), base_url.as_deref())
            {
                return Err(Error::field(
                    "apiKey",
                    secret_stays_home("API key", "baseUrl"),
                ));
            }
            a.base_url = base_url;
        }
        if let Some(v) = s.model {
            a.model = non_empty(v);
        }
        if let Some(v) = s.api_key {
            a.api_key_enc = non_empty(v).map(|key| self.services.secrets.encrypt(&key));
        }
        if let Some(v) = s.temperature {
            a.temperature = Some(v);
        }
        if let Some(v) = s.max_tokens {
            a.max_tokens = Some(v);
        }
        if let Some(v) = s.system_prompt {
            a.system_prompt = v;
        }
        if let Some(v) = s.fallback_reply {
            a.fallback_reply = non_empty(v);
        }
        if let Some(v) = s.evaluation_enabled {
            a.evaluation_enabled = v;
        }
        if let Some(v) = s.history_token_budget {
            a.history_token_budget = Some(v);
        }
        if let Some(v) = s.reply_debounce_ms {
            a.reply_debounce_ms = Some(v);
        }
        if let Some(v) = s.request_timeout_seconds {
            a.request_timeout_seconds = Some(v);
        }
        let fields = s.extraction_fields.unwrap_or_else(|| extraction_fields(&a));
        let rules = s.scripted_rules.unwrap_or_else(|| scripted_rules(&a));
        let templates = self.services.sandbox.for_workspace(a.workspace_id);
        validate(&self.services.egress, &templates, &a, &fields, &rules).await?;
        a.extraction_fields = to_json(&fields);
        a.scripted_rules = to_json(&rules);
        Ok(a)
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<Uuid> {
        let assistant = self.get(workspace_id, id).await?;
        assistant::Entity::delete_by_id(assistant.id)
            .exec(&self.services.db)
            .await?;
        Ok(assistant.id)
    }

    pub async fn get(&self, workspace_id: Uuid, id: Uuid) -> Result<assistant::Model> {
        find_in_workspace!(&self.services.db, assistant, workspace_id, id, "assistant")
    }

    pub async fn list(
        &self,
        workspace_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<assistant::Model>> {
        let select =
            assistant::Entity::find().filter(assistant::Column::WorkspaceId.eq(workspace_id));
        paginate(&self.services.db, select, assistant::Column::Id, page).await
    }
}
