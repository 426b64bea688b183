//! One attempt of one step in a run (per loop iteration). The idempotency key (run, step,
//! iteration) keeps a retried side effect from happening twice.

use sea_orm::entity::prelude::*;

use crate::enums::StepStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "step_run")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub run_id: Uuid,
    pub step_id: String,
    pub step_type: String,
    pub iteration: String,
    pub attempt: i32,
    pub status: StepStatus,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub input: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub output: Option<Json>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    #[sea_orm(unique)]
    pub idempotency_key: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
