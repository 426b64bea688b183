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
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
