//! AI assistants' configuration. The API key is write-only.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use waflow_entities::{
    assistant,
    enums::{AssistantProvider, ExtractionType},
};
use waflow_jobs::{
    Error, ai,
    assistants::{self as svc, AssistantSettings},
    messaging::ai_replies::{AiReply as Answer, GenerateAiReply},
};

use super::{GqlResult, connection, conversations::Conversation, page_request, parse_id, scope};

pub struct Assistant(pub assistant::Model);

impl Assistant {
    /// The assistant an object names, if it (still) exists.
    pub async fn load(ctx: &Context<'_>, id: Option<Uuid>) -> async_graphql::Result<Option<Self>> {
        let Some(id) = id else { return Ok(None) };
        let (services, workspace_id) = scope(ctx)?;
        match services.assistants().get(workspace_id, id).await {
            Ok(found) => Ok(Some(Assistant(found))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e).gql(),
        }
    }
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "ExtractionFieldInput")]
pub struct ExtractionField {
    name: String,
    r#type: ExtractionType,
    description: Option<String>,
    #[graphql(default)]
    options: Vec<String>,
    /// A regular expression; SCRIPTED assistants extract with it.
    pattern: Option<String>,
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "ScriptedRuleInput")]
pub struct ScriptedRule {
    /// A regular expression matched against the customer's message.
    pattern: String,
    /// A template; captures and conversation variables can be used.
    reply: String,
}

#[Object]
impl Assistant {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn provider(&self) -> AssistantProvider {
        self.0.provider
    }
    async fn base_url(&self) -> Option<&str> {
        self.0.base_url.as_deref()
    }
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    /// Whether an API key is stored; the key itself is never returned.
    async fn api_key_set(&self) -> bool {
        self.0.api_key_enc.is_some()
    }
    async fn temperature(&self) -> Option<f64> {
        self.0.temperature
    }
    async fn max_tokens(&self) -> Option<i32> {
        self.0.max_tokens
    }
    async fn system_prompt(&self) -> &str {
        &self.0.system_prompt
    }
    async fn extraction_fields(&self) -> Vec<ExtractionField> {
        svc::extraction_fields(&self.0)
            .into_iter()
            .map(|f| ExtractionField {
                name: f.name,
                r#type: f.r#type,
                description: f.description,
                options: f.options,
                pattern: f.pattern,
            })
            .collect()
    }
    async fn scripted_rules(&self) -> Vec<ScriptedRule> {
        svc::scripted_rules(&self.0)
            .into_iter()
            .map(|r| ScriptedRule {
                pattern: r.pattern,
                reply: r.reply,
            })
            .collect()
    }
    async fn fallback_reply(&self) -> Option<&str> {
        self.0.fallback_reply.as_deref()
    }
    /// Whether ended conversations are evaluated (status, summary and the extraction fields).
    async fn evaluation_enabled(&self) -> bool {
        self.0.evaluation_enabled
    }
    /// History sent to the model, in estimated tokens (4 characters each).
    async fn history_token_budget(&self) -> i32 {
        self.0
            .history_token_budget
            .unwrap_or(ai::DEFAULT_HISTORY_TOKEN_BUDGET)
    }
    /// How long auto-reply waits for more messages of a burst before answering them at once.
    async fn reply_debounce_ms(&self) -> i32 {
        self.0
            .reply_debounce_ms
            .unwrap_or(ai::DEFAULT_REPLY_DEBOUNCE_MS)
    }
    /// How long one model request may take.
    async fn request_timeout_seconds(&self) -> i32 {
        self.0
            .request_timeout_seconds
            .unwrap_or(ai::DEFAULT_REQUEST_TIMEOUT_SECONDS)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// The settings `createAssistant` and `updateAssistant` share; on update only those given change.
#[derive(InputObject)]
pub struct AssistantSettingsFields {
    base_url: Option<String>,
    /// Write-only; on update an empty string removes the stored key.
    api_key: Option<String>,
    model: Option<String>,
    temperature: Option<f64>,
    max_tokens: Option<i32>,
    /// A template over the conversation's variables, like {{ customer_name }}.
    system_prompt: Option<String>,
    extraction_fields: Option<Vec<ExtractionField>>,
    scripted_rules: Option<Vec<ScriptedRule>>,
    /// SCRIPTED: the reply when no rule matches. OPENAI_COMPATIBLE: what auto-reply sends when
    /// the model fails.
    fallback_reply: Option<String>,
    /// Evaluate ended conversations: `status`, `summary` and the extraction fields.
    evaluation_enabled: Option<bool>,
    /// History sent to the model, in estimated tokens (4 characters each). Default 3000.
    history_token_budget: Option<i32>,
    /// How long auto-reply waits for more messages of a burst. Default 2000.
    reply_debounce_ms: Option<i32>,
    /// How long one model request may take. Default 30.
    request_timeout_seconds: Option<i32>,
}

impl AssistantSettingsFields {
    fn into_settings(
        self,
        name: Option<String>,
        provider: Option<AssistantProvider>,
    ) -> AssistantSettings {
        AssistantSettings {
            name,
            provider,
            base_url: self.base_url,
            api_key: self.api_key,
            model: self.model,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            system_prompt: self.system_prompt,
            extraction_fields: self.extraction_fields.map(|list| {
                list.into_iter()
                    .map(|f| svc::ExtractionField {
                        name: f.name,
                        r#type: f.r#type,
                        description: f.description,
                        options: f.options,
                        pattern: f.pattern,
                    })
                    .collect()
            }),
            scripted_rules: self.scripted_rules.map(|list| {
                list.into_iter()
                    .map(|r| svc::ScriptedRule {
                        pattern: r.pattern,
                        reply: r.reply,
                    })
                    .collect()
            }),
            fallback_reply: self.fallback_reply,
            evaluation_enabled: self.evaluation_enabled,
            history_token_budget: self.history_token_budget,
            reply_debounce_ms: self.reply_debounce_ms,
            request_timeout_seconds: self.request_timeout_seconds,
        }
    }
}

#[derive(InputObject)]
pub struct CreateAssistantInput {
    name: String,
    provider: AssistantProvider,
    #[graphql(flatten)]
    settings: AssistantSettingsFields,
}

#[derive(InputObject)]
pub struct UpdateAssistantInput {
    name: Option<String>,
    provider: Option<AssistantProvider>,
    #[graphql(flatten)]
    settings: AssistantSettingsFields,
}

#[derive(InputObject)]
pub struct GenerateAiReplyInput {
    assistant_id: ID,
    /// Anything that identifies the customer: a phone number, an email, a CRM id.
    customer_identifier: String,
    /// The customer's message.
    message: String,
    /// Input variables for the conversation (the system prompt can use them); merged into those
    /// of an ongoing conversation.
    variables: Option<Json<serde_json::Value>>,
}

/// What `generateAiReply` answered.
pub struct AiReply(Answer);

#[Object]
impl AiReply {
    /// The assistant's reply; null when AI is disabled on the conversation or a SCRIPTED
    /// assistant has no rule that matches and no fallback reply.
    async fn reply(&self) -> Option<&str> {
        self.0.reply.as_deref()
    }
    async fn conversation_id(&self) -> ID {
        self.0.conversation.id.into()
    }
    /// The stored reply message; null when there is no reply.
    async fn message_id(&self) -> Option<ID> {
        self.0.reply_message.as_ref().map(|m| m.id.into())
    }
    /// The stored customer message.
    async fn customer_message_id(&self) -> ID {
        self.0.customer_message.id.into()
    }
    /// True when a human took over the conversation: the message is stored, the model not asked.
    async fn ai_disabled(&self) -> bool {
        self.0.ai_disabled
    }
    async fn conversation(&self) -> Conversation {
        Conversation(self.0.conversation.clone())
    }
}

#[derive(Default)]
pub struct AssistantQuery;

#[Object]
impl AssistantQuery {
    async fn assistant(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Assistant> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("assistant"))?;
        services
            .assistants()
            .get(workspace_id, id)
            .await
            .gql()
            .map(Assistant)
    }

    async fn assistants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Assistant>> {
        let (services, workspace_id) = scope(ctx)?;
        let page = services
            .assistants()
            .list(workspace_id, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |a| a.id, Assistant))
    }
}

#[derive(Default)]
pub struct AssistantMutation;

#[Object]
impl AssistantMutation {
    async fn create_assistant(
        &self,
        ctx: &Context<'_>,
        input: CreateAssistantInput,
    ) -> async_graphql::Result<Assistant> {
        let (services, workspace_id) = scope(ctx)?;
        let settings = input
            .settings
            .into_settings(Some(input.name), Some(input.provider));
        services
            .assistants()
            .create(workspace_id, settings)
            .await
            .gql()
            .map(Assistant)
    }

    async fn update_assistant(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAssistantInput,
    ) -> async_graphql::Result<Assistant> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("assistant"))?;
        let settings = input.settings.into_settings(input.name, input.provider);
        services
            .assistants()
            .update(workspace_id, id, settings)
            .await
            .gql()
            .map(Assistant)
    }

    /// Answers a customer's message with an assistant, in the customer's ongoing API
    /// conversation (started when there is none). The message is stored even if the model fails.
    async fn generate_ai_reply(
        &self,
        ctx: &Context<'_>,
        input: GenerateAiReplyInput,
    ) -> async_graphql::Result<AiReply> {
        let (services, workspace_id) = scope(ctx)?;
        let assistant_id = parse_id(&input.assistant_id, || Error::NotFound("assistant"))?;
        let request = GenerateAiReply {
            assistant_id,
            customer_identifier: input.customer_identifier,
            message: input.message,
            variables: input.variables.map(|v| v.0),
        };
        services
            .ai_replies()
            .generate(workspace_id, request)
            .await
            .gql()
            .map(AiReply)
    }

    async fn delete_assistant(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("assistant"))?;
        services
            .assistants()
            .delete(workspace_id, id)
            .await
            .gql()
            .map(ID::from)
    }
}
