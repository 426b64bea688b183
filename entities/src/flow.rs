//! An automation flow: an editable draft and, once published, the number of its live version.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub draft: Json,
    pub enabled: bool,
    pub published_version: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub webhook_secret_enc: Option<String>,
    /// A flow run with the failure as its trigger when a run of this one fails.
    pub on_error_flow_id: Option<Uuid>,
    /// Why the system disabled the flow (a sender's quality fell to RED), if it did.
    #[sea_orm(column_type = "Text", nullable)]
    pub paused_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
