//! A customer, known by an E.164 phone number unique within the workspace. Where WhatsApp's
//! id for the customer differs from the number (Brazil, Mexico, Argentina: see `phone`), either
//! form finds the contact, and the id WhatsApp gave is kept to send to.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "contact")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub phone: String,
    /// The customer's id as WhatsApp's webhooks give it (digits), once one came.
    pub wa_id: Option<String>,
    pub name: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub attributes: Json,
    pub opted_out: bool,
    pub opted_out_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// The contacts that are the customer with `phone`, in whichever of its forms they were stored.
pub fn is_customer(phone: &crate::E164) -> sea_orm::sea_query::SimpleExpr {
    Column::Phone.is_in(phone.equivalents())
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
