//! A WhatsApp phone number that sends and receives. Provider secrets are stored encrypted
//! (`*_enc` columns) and never leave the server.

use sea_orm::entity::prelude::*;

use crate::enums::{QualityRating, SenderProvider, SenderStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sender")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub phone_number: String,
    pub display_name: String,
    pub provider: SenderProvider,
    pub status: SenderStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub status_reason: Option<String>,
    pub quality_rating: QualityRating,
    pub messaging_limit_tier: Option<String>,
    pub phone_number_id: Option<String>,
    pub business_account_id: Option<String>,
    pub api_base_url: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub access_token_enc: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub app_secret_enc: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub verify_token_enc: Option<String>,
    pub messages_per_second: i32,
    pub inactivity_timeout_seconds: i32,
    pub assistant_id: Option<Uuid>,
    /// Lets MARKETING templates go out even while the quality rating is RED.
    pub allow_marketing_on_low_quality: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
