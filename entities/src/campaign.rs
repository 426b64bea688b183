//! A bulk send of one approved template to an audience, paced and windowed. `dispatch_token` names
//! the one dispatcher job chain allowed to send for it (a pause or resume starts a new one);
//! `locked_until` is that dispatcher's lease.

use sea_orm::entity::prelude::*;

use crate::enums::{CampaignStatus, QualityRating};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub sender_id: Uuid,
    pub template_id: Uuid,
    pub template_name: String,
    pub language: String,
    /// A JSON array (positional placeholders) or object (named), of minijinja templates.
    #[sea_orm(column_type = "JsonBinary")]
    pub variables: Json,
    /// `{"header": …, "buttons": […]}` of minijinja templates, for the template's header and
    /// buttons; null when it needs none.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub template_parameters: Option<Json>,
    /// `{"contactIds": [...]}` or `{"filter": {"tags": [...], "attributes": {...}}}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub audience: Json,
    pub start_at: Option<DateTimeUtc>,
    pub timezone: String,
    /// `{"days": ["MON", ...], "startTime": "09:00", "endTime": "18:00"}`.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub send_window: Option<Json>,
    pub messages_per_second: i32,
    pub acknowledge_no_opt_out: bool,
    pub pause_on_quality: QualityRating,
    pub failure_rate_window: i32,
    #[sea_orm(column_type = "Double")]
    pub failure_rate_threshold: f64,
    pub status: CampaignStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub status_reason: Option<String>,
    pub dispatch_token: Option<Uuid>,
    pub locked_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
