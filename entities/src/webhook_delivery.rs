//! One event's delivery to one endpoint, with its attempts, so retries survive restarts.

use sea_orm::entity::prelude::*;

use crate::enums::DeliveryStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_delivery")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_type: String,
    pub event_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub response_status: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
