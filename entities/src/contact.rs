//! A customer, known by an E.164 phone number, by Meta's business-scoped user id (BSUID), or
//! both; each is unique within the workspace. Where WhatsApp's id for the customer differs from
//! the number (Brazil, Mexico, Argentina: see `phone`), either form finds the contact, and the
//! id WhatsApp gave is kept to send to. A customer with a WhatsApp username may hide their
//! number: then the BSUID is all there is, and messages go to it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "contact")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// E.164; `None` for a customer known only by `user_id`.
    pub phone: Option<String>,
    /// The customer's id as WhatsApp's webhooks give it (digits), once one came.
    pub wa_id: Option<String>,
    /// Meta's business-scoped user id (`US.13491208655302741918`), once one came.
    pub user_id: Option<String>,
    /// The customer's WhatsApp username, when they have one.
    pub username: Option<String>,
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

/// The contacts that are this customer by either identifier: the number (any of its forms) or
/// the business-scoped user id. `None` when neither is given.
pub fn identified_by(
    phone: Option<&crate::E164>,
    user_id: Option<&str>,
) -> Option<sea_orm::Condition> {
    let mut any = sea_orm::Condition::any();
    if let Some(phone) = phone {
        any = any.add(is_customer(phone));
    }
    if let Some(user_id) = user_id {
        any = any.add(Column::UserId.eq(user_id));
    }
    (phone.is_some() || user_id.is_some()).then_some(any)
}

impl Model {
    /// Whether this contact's number is `phone`, in any of its forms (`E164::equivalents`).
    pub fn has_number(&self, phone: &crate::E164) -> bool {
        self.phone
            .as_ref()
            .is_some_and(|stored| phone.equivalents().contains(stored))
    }

    /// What a message's `to` takes for this customer (see `CustomerAddress`): the number, else
    /// the business-scoped user id.
    pub fn address(&self) -> String {
        self.phone
            .clone()
            .or_else(|| self.user_id.clone())
            .unwrap_or_default()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
