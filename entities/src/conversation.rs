//! A conversation: between a sender and a contact (WHATSAPP) or an assistant and any customer
//! identifier (API). `ended_payload` is the conversation-ended payload, built once at the end.

use sea_orm::entity::prelude::*;

use crate::enums::{ConversationStatus, ConversationType, EndReason, ExtractionStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "conversation")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub r#type: ConversationType,
    pub status: ConversationStatus,
    pub end_reason: Option<EndReason>,
    pub sender_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub customer_identifier: Option<String>,
    pub assistant_id: Option<Uuid>,
    pub ai_enabled: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub input_variables: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub extracted_variables: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub ended_payload: Option<Json>,
    pub message_count: i32,
    pub created_at: DateTimeUtc,
    pub last_message_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    /// The post-conversation evaluation's state; `None` when the assistant evaluates nothing.
    pub extraction_status: Option<ExtractionStatus>,
    /// Why the evaluation FAILED; `None` otherwise.
    pub extraction_error: Option<String>,
    /// Auto-reply: the newest customer message already answered.
    pub ai_replied_through: Option<Uuid>,
    /// Auto-reply: when the burst is over and the reply is due.
    pub ai_reply_due_at: Option<DateTimeUtc>,
    /// Auto-reply: a worker producing a reply holds this lease, so replies come one at a time.
    pub ai_locked_until: Option<DateTimeUtc>,
    /// The campaign whose message this conversation answered.
    pub campaign_id: Option<Uuid>,
    /// The Click-to-WhatsApp ad (or post) that brought the customer: Meta's `referral` object
    /// of the first message that carried one.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub referral: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
