//! The trigger index: one row per enabled, published flow, keyed the way events look flows up
//! (workspace, trigger type, sender or event name). Schedules keep their next firing time here.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_trigger")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub flow_id: Uuid,
    pub workspace_id: Uuid,
    pub trigger_type: String,
    pub sender_id: Option<Uuid>,
    pub event_name: Option<String>,
    pub flow_version_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub trigger: Json,
    pub next_fire_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
