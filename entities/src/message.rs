//! One message in a conversation, inbound or outbound, with its delivery status.

use sea_orm::entity::prelude::*;

use crate::enums::{MessageDirection, MessageKind, MessageRole, MessageStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub conversation_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub direction: MessageDirection,
    pub role: MessageRole,
    pub kind: MessageKind,
    #[sea_orm(column_type = "Text", nullable)]
    pub body: Option<String>,
    pub template_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub template_params: Option<Json>,
    pub provider_message_id: Option<String>,
    pub status: MessageStatus,
    pub error_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    pub idempotency_key: Option<String>,
    /// Media id and type, location, button payload: what the message carries besides text.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub payload: Option<Json>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
