//! Contacts: the customers a workspace talks to, one per E.164 number. Deleting one erases its
//! conversations and messages too (a customer's right to erasure).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait, Func},
};
use uuid::Uuid;
use waflow_entities::{E164, contact, contact_tag, contact_window, conversation, message};

use crate::context::{Services, find_in_workspace};
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
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct ContactChanges {
    pub name: Option<String>,
    pub attributes: Option<serde_json::Value>,
    pub opted_out: Option<bool>,
    /// Replaces every tag.
    pub tags: Option<Vec<String>>,
}

/// Which contacts to list; every field given narrows the list.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Part of the phone number or, ignoring case, of the name.
    pub search: Option<String>,
    /// Contacts with every one of these tags.
    pub tags: Vec<String>,
    /// Contacts whose attributes have these values (compared as text).
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub opted_out: Option<bool>,
}

/// Most tags one contact can have, and the longest tag.
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 64;

/// Trimmed, without repeats, each 1 to 64 characters, at most 50.
pub fn clean_tags(tags: &[String], field: &str) -> Result<Vec<String>> {
    let mut clean: Vec<String> = Vec::new();
    for tag in tags.iter().map(|t| t.trim()) {
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
            return Err(Error::field(
                field,
                format!("a tag must be 1 to {MAX_TAG_CHARS} characters"),
            ));
        }
        if !clean.iter().any(|t| t == tag) {
            clean.push(tag.to_owned());
        }
    }
    if clean.len() > MAX_TAGS {
        return Err(Error::field(field, format!("at most {MAX_TAGS} tags")));
    }
    Ok(clean)
}

/// Gives the contact exactly these tags (or, `replace` false, adds them).
pub(crate) async fn set_tags(
    db: &impl sea_orm::ConnectionTrait,
    workspace_id: Uuid,
    contact_id: Uuid,
    tags: &[String],
    replace: bool,
) -> Result<()> {
    if replace {
        contact_tag::Entity::delete_many()
            .filter(contact_tag::Column::ContactId.eq(contact_id))
            .exec(db)
            .await?;
    }
    if tags.is_empty() {
        return Ok(());
    }
    contact_tag::Entity::insert_many(tags.iter().map(|tag| contact_tag::ActiveModel {
        contact_id: Set(contact_id),
        tag: Set(tag.clone()),
        workspace_id: Set(workspace_id),
    }))
    .on_conflict(
        sea_orm::sea_query::OnConflict::columns([
            contact_tag::Column::ContactId,
            contact_tag::Column::Tag,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
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

impl Services {
    pub fn contacts(&self) -> ContactService<'_> {
        ContactService { services: self }
    }
}

/// Attributes a contact may have.
pub const MAX_ATTRIBUTES: usize = 100;
/// Characters of an attribute's name.
pub const MAX_ATTRIBUTE_NAME: usize = 100;
/// Bytes of an attribute's value, as JSON (a CSV cell: its characters, quoted).
pub const MAX_ATTRIBUTE_BYTES: usize = 4096;

/// What is wrong with `attributes` as a contact's, if anything.
pub fn attribute_problem(
    attributes: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Some(format!(
            "{} attributes; a contact has at most {MAX_ATTRIBUTES}",
            attributes.len()
        ));
    }
    attributes.iter().find_map(|(name, value)| {
        if name.chars().count() > MAX_ATTRIBUTE_NAME {
            return Some(format!(
                "the attribute name {:?}… is over {MAX_ATTRIBUTE_NAME} characters",
                name.chars().take(20).collect::<String>()
            ));
        }
        let size = crate::validation::json_size(value);
        (size > MAX_ATTRIBUTE_BYTES).then(|| {
            format!("the attribute {name:?} is {size} bytes; an attribute is at most {MAX_ATTRIBUTE_BYTES}")
        })
    })
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
    match attributes {
        Some(serde_json::Value::Object(map)) => {
            if let Some(problem) = attribute_problem(map) {
                problems.add("attributes", problem);
            }
        }
        Some(_) => problems.add("attributes", "must be a JSON object"),
        None => {}
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
            .filter(contact::is_customer(&phone))
            .count(&self.services.db)
            .await?;
        if exists > 0 {
            return Err(Error::field(
                "phone",
                "a contact with this phone number already exists",
            ));
        }
        let tags = clean_tags(input.tags.as_deref().unwrap_or_default(), "tags")?;
        let now = Utc::now();
        let txn = crate::db::begin_write(&self.services.db).await?;
        let created = contact::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            phone: Set(Some(phone.to_string())),
            wa_id: Set(None),
            user_id: Set(None),
            username: Set(None),
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
        .insert(&txn)
        .await
        .map_err(|e| {
            Error::from_unique_violation(
                e,
                "phone",
                "a contact with this phone number already exists",
            )
        })?;
        set_tags(&txn, workspace_id, created.id, &tags, true).await?;
        txn.commit().await?;
        Ok(created)
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
        let tags = changes
            .tags
            .as_deref()
            .map(|t| clean_tags(t, "tags"))
            .transpose()?;
        let txn = crate::db::begin_write(&self.services.db).await?;
        let updated = model.update(&txn).await?;
        if let Some(tags) = tags {
            set_tags(&txn, workspace_id, updated.id, &tags, true).await?;
        }
        txn.commit().await?;
        Ok(updated)
    }

    /// A contact's tags, sorted.
    pub async fn tags(&self, contact_id: Uuid) -> Result<Vec<String>> {
        let mut tags: Vec<String> = contact_tag::Entity::find()
            .filter(contact_tag::Column::ContactId.eq(contact_id))
            .all(&self.services.db)
            .await?
            .into_iter()
            .map(|t| t.tag)
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Erases a contact with every conversation and message it had, in one transaction.
    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<Erasure> {
        let txn = crate::db::begin_write(&self.services.db).await?;
        let contact = find_in_workspace!(&txn, contact, workspace_id, id, "contact")?;
        // A replay of the contact's messages must not bring them back.
        crate::messaging::replay::remember_erased(&txn, workspace_id, contact.id).await?;
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

    /// Lists contacts by the filter, oldest first.
    pub async fn list(
        &self,
        workspace_id: Uuid,
        filter: ContactFilter,
        page: PageRequest,
    ) -> Result<Page<contact::Model>> {
        let select = self.matching(workspace_id, &filter)?;
        paginate(&self.services.db, select, contact::Column::Id, page).await
    }

    /// The query for the workspace's contacts that pass `filter` (a list, a campaign audience).
    pub fn matching(
        &self,
        workspace_id: Uuid,
        filter: &ContactFilter,
    ) -> Result<sea_orm::Select<contact::Entity>> {
        let mut select =
            contact::Entity::find().filter(contact::Column::WorkspaceId.eq(workspace_id));
        if let Some(term) = filter
            .search
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let pattern = format!("%{}%", escape_like(&term.to_lowercase()));
            let digits: String = term.chars().filter(char::is_ascii_digit).collect();
            let mut any = Condition::any().add(
                Expr::expr(Func::lower(Expr::col(contact::Column::Name)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\')),
            );
            if !digits.is_empty() {
                any = any.add(contact::Column::Phone.contains(&digits));
            }
            // A username customer is found by their username.
            any = any.add(
                Expr::expr(Func::lower(Expr::col(contact::Column::Username)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
            );
            select = select.filter(any);
        }
        let tags = clean_tags(&filter.tags, "filter.tags")?;
        if !tags.is_empty() {
            let with_all = sea_orm::sea_query::Query::select()
                .column(contact_tag::Column::ContactId)
                .from(contact_tag::Entity)
                .and_where(Expr::col(contact_tag::Column::WorkspaceId).eq(workspace_id))
                .and_where(Expr::col(contact_tag::Column::Tag).is_in(tags.clone()))
                .group_by_col(contact_tag::Column::ContactId)
                .and_having(
                    Expr::col(contact_tag::Column::Tag)
                        .count()
                        .eq(tags.len() as i64),
                )
                .to_owned();
            select = select.filter(contact::Column::Id.in_subquery(with_all));
        }
        let backend = self.services.db.get_database_backend();
        for (key, value) in &filter.attributes {
            let valid_key =
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let Some(text) = value.as_str().filter(|_| valid_key) else {
                return Err(Error::field(
                    format!("filter.attributes.{key}"),
                    "keys are letters, digits and underscores; values are strings",
                ));
            };
            // The attribute as text, the same way on both databases.
            let condition = match backend {
                sea_orm::DbBackend::Postgres => Expr::cust_with_values(
                    "\"contact\".\"attributes\" ->> $1 = $2",
                    [key.clone(), text.to_owned()],
                ),
                _ => Expr::cust_with_values(
                    "json_extract(\"contact\".\"attributes\", ?) = ?",
                    [format!("$.{key}"), text.to_owned()],
                ),
            };
            select = select.filter(condition);
        }
        if let Some(opted_out) = filter.opted_out {
            select = select.filter(contact::Column::OptedOut.eq(opted_out));
        }
        Ok(select)
    }
}

fn escape_like(term: &str) -> String {
    term.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
