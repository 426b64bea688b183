//! Message templates: what may be sent outside the 24-hour window. Their structure follows
//! Meta's template components (header, body with numbered placeholders, footer, buttons) and the
//! limits Meta enforces on review, so a template refused by Meta is refused here first.

use std::sync::LazyLock;

use chrono::Utc;
use regex::Regex;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;
use waflow_entities::{
    enums::{SenderProvider, TemplateCategory, TemplateStatus},
    sender, template,
};

use crate::context::{Services, find_in_workspace};
use crate::{
    content::template_components::{Components, validate_category, validate_components},
    error::{Error, Result},
    pagination::{Page, PageRequest, paginate},
    placeholders::Placeholders,
    providers::cloud_api::{CloudApi, parse_template_status},
    validation::Problems,
};

static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9_]{1,512}$").unwrap());
static LANGUAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2,3}(_[A-Z]{2})?$").unwrap());

#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub sender_id: Uuid,
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub components: Components,
}

#[derive(Debug, Clone, Default)]
pub struct TemplateChanges {
    pub category: Option<TemplateCategory>,
    pub components: Option<Components>,
}

/// How many templates a sync created and updated.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncReport {
    pub created: u32,
    pub updated: u32,
}

/// Meta's verdict on a template, as its webhook reports it.
#[derive(Debug, Clone)]
pub struct TemplateReview {
    pub provider_template_id: Option<String>,
    pub name: Option<String>,
    pub language: Option<String>,
    /// APPROVED, REJECTED, PAUSED, DISABLED, ...
    pub event: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub sender_id: Option<Uuid>,
    pub status: Option<TemplateStatus>,
}

pub struct TemplateService<'a> {
    pub(crate) services: &'a Services,
}

impl Services {
    pub fn templates(&self) -> TemplateService<'_> {
        TemplateService { services: self }
    }
}

impl TemplateService<'_> {
    pub async fn create(&self, workspace_id: Uuid, input: NewTemplate) -> Result<template::Model> {
        let sender = find_in_workspace!(
            &self.services.db,
            sender,
            workspace_id,
            input.sender_id,
            "sender"
        )
        .map_err(|_| Error::SenderNotFound(input.sender_id.to_string()))?;
        let mut problems = Problems::new();
        problems.check(
            NAME.is_match(&input.name),
            "name",
            "must be lowercase letters, digits and underscores (like order_confirmed)",
        );
        problems.check(
            LANGUAGE.is_match(&input.language),
            "language",
            "must be a WhatsApp language code like en or en_US",
        );
        let variable_count = validate_components(&mut problems, &input.components);
        validate_category(&mut problems, input.category, &input.components);
        problems.into_result()?;

        let duplicate = template::Entity::find()
            .filter(template::Column::SenderId.eq(sender.id))
            .filter(template::Column::Name.eq(&input.name))
            .filter(template::Column::Language.eq(&input.language))
            .one(&self.services.db)
            .await?;
        if duplicate.is_some() {
            return Err(Error::field(
                "name",
                "this sender already has a template with this name and language",
            ));
        }
        // A Cloud API template goes to Meta's review first; Meta's id ties later verdicts to it.
        let (status, provider_template_id) = match sender.provider {
            SenderProvider::Sandbox => (TemplateStatus::Pending, None),
            SenderProvider::CloudApi => {
                let placeholders = Placeholders::parse(&input.components.body)
                    .map_err(|e| Error::field("components.body", e))?;
                let created = CloudApi::for_sender(self.services, &sender)?
                    .create_template(
                        &input.name,
                        &input.language,
                        input.category,
                        &input.components,
                        placeholders.format,
                        &placeholders.names,
                    )
                    .await
                    .map_err(|refusal| refusal.error)?;
                let status = created
                    .status
                    .as_deref()
                    .map_or(TemplateStatus::Pending, parse_template_status);
                (status, Some(created.id))
            }
        };
        let now = Utc::now();
        template::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            sender_id: Set(sender.id),
            name: Set(input.name),
            language: Set(input.language),
            category: Set(input.category),
            status: Set(status),
            status_reason: Set(None),
            components: Set(serde_json::to_value(&input.components).expect("components serialize")),
            variable_count: Set(variable_count as i32),
            provider_template_id: Set(provider_template_id),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.services.db)
        .await
        .map_err(|e| {
            Error::from_unique_violation(
                e,
                "name",
                "this sender already has a template with this name and language",
            )
        })
    }

    /// Brings a Cloud API sender's templates in line with Meta's: every template of its
    /// business account is inserted or updated (status, category, components). Answers how many
    /// were created and updated.
    pub async fn sync(&self, workspace_id: Uuid, sender_id: Uuid) -> Result<SyncReport> {
        let sender =
            find_in_workspace!(&self.services.db, sender, workspace_id, sender_id, "sender")
                .map_err(|_| Error::SenderNotFound(sender_id.to_string()))?;
        if sender.provider != SenderProvider::CloudApi {
            return Err(Error::field(
                "senderId",
                "only CLOUD_API senders have templates at Meta",
            ));
        }
        let remote = CloudApi::for_sender(self.services, &sender)?
            .list_templates()
            .await
            .map_err(|r| r.error)?;
        let mut report = SyncReport::default();
        let now = Utc::now();
        for meta in remote {
            let components = meta.components();
            let variable_count =
                Placeholders::parse(&components.body).map_or(0, |p| p.count()) as i32;
            let existing = template::Entity::find()
                .filter(template::Column::SenderId.eq(sender.id))
                .filter(template::Column::Name.eq(&meta.name))
                .filter(template::Column::Language.eq(&meta.language))
                .one(&self.services.db)
                .await?;
            let is_new = existing.is_none();
            let mut model = match existing {
                Some(found) => {
                    report.updated += 1;
                    template::ActiveModel::from(found)
                }
                None => {
                    report.created += 1;
                    template::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        workspace_id: Set(workspace_id),
                        sender_id: Set(sender.id),
                        name: Set(meta.name.clone()),
                        language: Set(meta.language.clone()),
                        created_at: Set(now),
                        ..Default::default()
                    }
                }
            };
            model.category = Set(meta.category());
            model.status = Set(parse_template_status(&meta.status));
            model.status_reason = Set(meta
                .rejected_reason
                .clone()
                .filter(|r| !r.is_empty() && r != "NONE"));
            model.components =
                Set(serde_json::to_value(&components).expect("components serialize"));
            model.variable_count = Set(variable_count);
            model.provider_template_id = Set(meta.id.clone());
            model.updated_at = Set(now);
            // `save` would UPDATE a new row too: its primary key is already set.
            if is_new {
                model.insert(&self.services.db).await?;
            } else {
                model.update(&self.services.db).await?;
            }
        }
        Ok(report)
    }

    /// Applies Meta's review verdict (the `message_template_status_update` webhook) to the
    /// template it names, among the senders of that business account. Unknown templates are
    /// ignored (`None`).
    pub async fn apply_review(
        &self,
        business_account_id: &str,
        review: &TemplateReview,
    ) -> Result<Option<template::Model>> {
        let senders: Vec<Uuid> = sender::Entity::find()
            .filter(sender::Column::BusinessAccountId.eq(business_account_id))
            .all(&self.services.db)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let mut query = template::Entity::find().filter(template::Column::SenderId.is_in(senders));
        query = match (&review.provider_template_id, &review.name, &review.language) {
            (Some(id), _, _) => query.filter(template::Column::ProviderTemplateId.eq(id)),
            (None, Some(name), Some(language)) => query
                .filter(template::Column::Name.eq(name))
                .filter(template::Column::Language.eq(language)),
            _ => return Ok(None),
        };
        let Some(found) = query.one(&self.services.db).await? else {
            return Ok(None);
        };
        let mut model: template::ActiveModel = found.into();
        model.status = Set(parse_template_status(&review.event));
        model.status_reason = Set(review
            .reason
            .clone()
            .filter(|r| !r.is_empty() && r != "NONE"));
        model.updated_at = Set(Utc::now());
        Ok(Some(model.update(&self.services.db).await?))
    }

    /// Edits a sandbox template. An edit sends it back to review (PENDING), as on WhatsApp.
    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        changes: TemplateChanges,
    ) -> Result<template::Model> {
        let (current, provider) = self.get_with_provider(workspace_id, id).await?;
        let mut problems = Problems::new();
        problems.check(
            provider == SenderProvider::Sandbox,
            "id",
            "templates of a CLOUD_API sender are edited in WhatsApp Manager",
        );
        let variable_count = changes
            .components
            .as_ref()
            .map(|c| validate_components(&mut problems, c));
        let category = changes.category.unwrap_or(current.category);
        match &changes.components {
            Some(components) => validate_category(&mut problems, category, components),
            None => validate_category(
                &mut problems,
                category,
                &Components::from_json(&current.components)?,
            ),
        }
        problems.into_result()?;

        let mut model: template::ActiveModel = current.into();
        if let Some(category) = changes.category {
            model.category = Set(category);
        }
        if let (Some(components), Some(count)) = (changes.components, variable_count) {
            model.components =
                Set(serde_json::to_value(&components).expect("components serialize"));
            model.variable_count = Set(count as i32);
        }
        model.status = Set(TemplateStatus::Pending);
        model.status_reason = Set(None);
        model.updated_at = Set(Utc::now());
        Ok(model.update(&self.services.db).await?)
    }

    /// Moves a sandbox template through review by hand; a Cloud API template's status is Meta's.
    pub async fn set_status(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        status: TemplateStatus,
        reason: Option<String>,
    ) -> Result<template::Model> {
        let (current, provider) = self.get_with_provider(workspace_id, id).await?;
        if provider != SenderProvider::Sandbox {
            return Err(Error::field(
                "id",
                "a CLOUD_API template's status comes from Meta's review",
            ));
        }
        let mut model: template::ActiveModel = current.into();
        model.status = Set(status);
        model.status_reason = Set(reason.filter(|r| !r.trim().is_empty()));
        model.updated_at = Set(Utc::now());
        Ok(model.update(&self.services.db).await?)
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<Uuid> {
        let template = self.get(workspace_id, id).await?;
        template::Entity::delete_by_id(template.id)
            .exec(&self.services.db)
            .await?;
        Ok(template.id)
    }

    pub async fn get(&self, workspace_id: Uuid, id: Uuid) -> Result<template::Model> {
        find_in_workspace!(&self.services.db, template, workspace_id, id, "template")
    }

    async fn get_with_provider(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<(template::Model, SenderProvider)> {
        let template = self.get(workspace_id, id).await?;
        let sender = find_in_workspace!(
            &self.services.db,
            sender,
            workspace_id,
            template.sender_id,
            "sender"
        )?;
        Ok((template, sender.provider))
    }

    pub async fn list(
        &self,
        workspace_id: Uuid,
        filter: TemplateFilter,
        page: PageRequest,
    ) -> Result<Page<template::Model>> {
        let mut select =
            template::Entity::find().filter(template::Column::WorkspaceId.eq(workspace_id));
        if let Some(sender_id) = filter.sender_id {
            select = select.filter(template::Column::SenderId.eq(sender_id));
        }
        if let Some(status) = filter.status {
            select = select.filter(template::Column::Status.eq(status));
        }
        paginate(&self.services.db, select, template::Column::Id, page).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::template_components::Button;
    use waflow_entities::enums::ButtonType;

    fn body(text: &str) -> Components {
        Components {
            header: None,
            body: text.into(),
            footer: None,
            buttons: vec![],
            body_examples: vec![],
        }
    }

    fn check(c: &Components) -> (usize, Result<()>) {
        let mut problems = Problems::new();
        let n = validate_components(&mut problems, c);
        (n, problems.into_result())
    }

    #[test]
    fn counts_numbered_placeholders() {
        assert_eq!(
            check(&body("Hi {{1}}, order {{2}} ships {{ 3 }}. Bye {{1}}")).0,
            3
        );
        assert_eq!(check(&body("No variables")).0, 0);
    }

    #[test]
    fn refuses_gaps_mixtures_and_zero() {
        assert_eq!(check(&body("Hi {{customer_name}}, {{doctor}}")).0, 2);
        for text in [
            "Hi {{2}}",
            "Hi {{1}} {{3}}",
            "Hi {{1}} {{name}}",
            "Hi {{0}}",
            "Hi {{Name}}",
        ] {
            let (_, result) = check(&body(text));
            let err = result.expect_err(text).to_string();
            assert!(err.starts_with("components.body: "), "{text}: {err}");
        }
    }

    #[test]
    fn refuses_what_meta_refuses() {
        let mut c = body("Hi {{1}}");
        c.footer = Some("Reply {{1}}".into());
        c.buttons = vec![Button {
            r#type: ButtonType::Url,
            text: "Open".into(),
            url: None,
            phone_number: None,
            example: None,
        }];
        c.body_examples = vec!["a".into(), "b".into()];
        let err = check(&c).1.unwrap_err().to_string();
        assert!(err.contains("components.footer"), "{err}");
        assert!(err.contains("components.buttons[0].url"), "{err}");
        assert!(err.contains("components.bodyExamples"), "{err}");
    }
}
