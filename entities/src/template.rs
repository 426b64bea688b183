//! A WhatsApp message template of a sender. `components` holds header, body (with `{{1}}`…
//! placeholders), footer and buttons as JSON; `variable_count` is the number of body placeholders.

use sea_orm::entity::prelude::*;

use crate::enums::{TemplateCategory, TemplateStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "template")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub sender_id: Uuid,
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub status: TemplateStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub status_reason: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub components: Json,
    pub variable_count: i32,
    pub provider_template_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
