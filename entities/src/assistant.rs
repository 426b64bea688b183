//! An AI assistant: an OpenAI-compatible model or offline scripted rules. The API key is
//! stored encrypted.

use sea_orm::entity::prelude::*;

use crate::enums::AssistantProvider;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "assistant")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub provider: AssistantProvider,
    pub base_url: Option<String>,
    pub model: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub api_key_enc: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i32>,
    #[sea_orm(column_type = "Text")]
    pub system_prompt: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub extraction_fields: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub scripted_rules: Json,
    #[sea_orm(column_type = "Text", nullable)]
    pub fallback_reply: Option<String>,
    /// Extract `status`, `summary` and the extraction fields when a conversation ends.
    pub evaluation_enabled: bool,
    /// How much history goes to the model, in estimated tokens; `None` is the default budget.
    pub history_token_budget: Option<i32>,
    /// How long auto-reply waits for more messages of a burst; `None` is the default.
    pub reply_debounce_ms: Option<i32>,
    /// How long one model request may take; `None` is the default.
    pub request_timeout_seconds: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
