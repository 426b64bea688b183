//! A webhook entry Waflow could not read as a message (no id, no customer, a phone number id no
//! sender has), kept whole so that nothing Meta sent is lost without a trace.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "inbound_dead_letter")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The workspace of the sender it came for, when one could be told.
    pub workspace_id: Option<Uuid>,
    pub sender_id: Option<Uuid>,
    /// Why it could not be read, for a person.
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    /// The entry as Meta sent it (a `messages[]` item, or the whole change value).
    #[sea_orm(column_type = "JsonBinary")]
    pub raw: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
