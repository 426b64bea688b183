//! One execution of a flow version. `state` (position, variables, step outputs) is written after
//! every step so any worker can resume the run.

use sea_orm::entity::prelude::*;

use crate::enums::RunStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_run")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub flow_id: Uuid,
    pub flow_version_id: Uuid,
    pub status: RunStatus,
    pub trigger_type: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub trigger_payload: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub state: Json,
    pub concurrency_key: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    /// A worker executing the run holds it until then (renewed while it works).
    pub locked_until: Option<DateTimeUtc>,
    /// `reply:<sender id>:<phone>` while a `wait_for_reply` step waits.
    pub waiting_for: Option<String>,
    /// When a parked run is due: its state's wake-up time (a delay's end, a retry's backoff, a
    /// reply's timeout), copied here so overdue runs can be found with an index.
    pub wake_at: Option<DateTimeUtc>,
    /// Who holds the lease: each job that takes the run draws a new id, and saves only while
    /// the row still names it.
    pub locked_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
