//! One contact of a started campaign: written when the campaign starts (the audience is frozen
//! then), moved along as the message is sent, delivered, read and answered.

use sea_orm::entity::prelude::*;

use crate::enums::RecipientStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign_recipient")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    pub phone: String,
    pub status: RecipientStatus,
    pub message_id: Option<Uuid>,
    /// The conversation the recipient replied in.
    pub conversation_id: Option<Uuid>,
    pub error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    pub sent_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
