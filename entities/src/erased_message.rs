//! An erased contact's message, remembered only by a hash of its provider id (per sender), so
//! that a replayed webhook cannot bring it back.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "erased_message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sender_id: Uuid,
    /// SHA-256 of the provider message id, hex.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub workspace_id: Uuid,
    pub erased_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
