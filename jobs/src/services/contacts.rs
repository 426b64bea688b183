//! Contacts: the customers a workspace talks to, one per E.164 number. Deleting one erases its
//! conversations and messages too (a customer's right to erasure).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait, Func},
};
use uuid::Uuid;
use waflow_entities::{E164, contact, contact_window, conversation, message};

use super::{Services, find_in_workspace};
use crate::{
    error::{Error, Result},
    pagination::{Page, PageRequest, paginate},
    validation::Problems,
};

#[derive(Debug, Clone)]
pub struct NewContact {
    pub phone: String,
    pub name: Option<String>,
    pub attributes: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ContactChanges {
    pub name: Option<String>,
    pub attributes: Option<serde_json::Value>,
    pub opted_out: Option<bool>,
}

/// What an erasure removed, so the workspace can document the request was honoured.
#[derive(Debug, Clone, Copy)]
pub struct Erasure {
    pub contact_id: Uuid,
    pub conversations: u64,
    pub messages: u64,
}

pub struct ContactService<'a> {
    pub(crate) services: &'a Services,
}

fn check_fields(
    problems: &mut Problems,
    name: Option<&String>,
    attributes: Option<&serde_json::Value>,
) {
    if let Some(name) = name {
        problems.check(
            name.chars().count() <= 256,
            "name",
            "must be at most 256 characters",
        );
    }
    if let Some(attributes) = attributes {
        problems.check(
            attributes.is_object(),
            "attributes",
            "must be a JSON object",
        );
    }
}

impl ContactService<'_> {
    pub async fn create(&self, workspace_id: Uuid, input: NewContact) -> Result<contact::Model> {
        let phone = E164::parse(&input.phone).map_err(|e| Error::phone("phone", e))?;
        let mut problems = Problems::new();
        check_fields(
            &mut problems,
            input.name.as_ref(),
            input.attributes.as_ref(),
        );
        problems.into_result()?;
        let exists = contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(workspace_id))
            .filter(contact::Column::Phone.eq(phone.as_str()))
            .count(&self.services.db)
            .await?;
        if exists > 0 {
            return Err(Error::field(
                "phone",
                "a contact with this phone number already exists",
            ));
        }
        let now = Utc::now();
        contact::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            phone: Set(phone.to_string()),
            name: Set(input
                .name
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())),
            attributes: Set(input.attributes.unwrap_or_else(|| serde_json::json!({}))),
            opted_out: Set(false),
            opted_out_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.services.db)
        .await
        .map_err(|e| {
            Error::from_unique_violation(
                e,
                "phone",
                "a contact with this phone number already exists",
            )
        })
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        changes: ContactChanges,
    ) -> Result<contact::Model> {
        let current = self.get(workspace_id, id).await?;
        let mut problems = Problems::new();
        check_fields(
            &mut problems,
            changes.name.as_ref(),
            changes.attributes.as_ref(),
        );
        problems.into_result()?;

        let was_opted_out = current.opted_out;
        let mut model: contact::ActiveModel = current.into();
        if let Some(name) = changes.name {
            model.name = Set(Some(name.trim().to_owned()).filter(|n| !n.is_empty()));
        }
        if let Some(attributes) = changes.attributes {
            model.attributes = Set(attributes);
        }
        let now = Utc::now();
        if let Some(opted_out) = changes.opted_out.filter(|&o| o != was_opted_out) {
            model.opted_out = Set(opted_out);
            model.opted_out_at = Set(opted_out.then_some(now));
        }
        model.updated_at = Set(now);
        Ok(model.update(&self.services.db).await?)
    }

    /// Erases a contact with every conversation and message it had, in one transaction.
    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<Erasure> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let contact = find_in_workspace!(&txn, contact, workspace_id, id, "contact")?;
        let conversation_ids: Vec<Uuid> = conversation::Entity::find()
            .filter(conversation::Column::ContactId.eq(contact.id))
            .all(&txn)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let messages = message::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(message::Column::ContactId.eq(contact.id))
                    .add(message::Column::ConversationId.is_in(conversation_ids.clone())),
            )
            .exec(&txn)
            .await?
            .rows_affected;
        let conversations = conversation::Entity::delete_many()
            .filter(conversation::Column::Id.is_in(conversation_ids))
            .exec(&txn)
            .await?
            .rows_affected;
        contact_window::Entity::delete_many()
            .filter(contact_window::Column::ContactId.eq(contact.id))
            .exec(&txn)
            .await?;
        contact::Entity::delete_by_id(contact.id).exec(&txn).await?;
        txn.commit().await?;
        Ok(Erasure {
            contact_id: contact.id,
            conversations,
            messages,
        })
    }

    pub async fn get(&self, workspace_id: Uuid, id: Uuid) -> Result<contact::Model> {
        find_in_workspace!(&self.services.db, contact, workspace_id, id, "contact")
    }

    /// Lists contacts; `search` matches part of the phone number or, ignoring case, of the name.
    pub async fn list(
        &self,
        workspace_id: Uuid,
        search: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<contact::Model>> {
        let mut select =
            contact::Entity::find().filter(contact::Column::WorkspaceId.eq(workspace_id));
        if let Some(term) = search.map(str::trim).filter(|t| !t.is_empty()) {
            let pattern = format!("%{}%", escape_like(&term.to_lowercase()));
            let digits: String = term.chars().filter(char::is_ascii_digit).collect();
            let mut any = Condition::any().add(
                Expr::expr(Func::lower(Expr::col(contact::Column::Name)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
            );
            if !digits.is_empty() {
                any = any.add(contact::Column::Phone.contains(&digits));
            }
            select = select.filter(any);
        }
        paginate(&self.services.db, select, contact::Column::Id, page).await
    }
}

fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
