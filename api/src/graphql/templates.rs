//! Message templates and their components.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};
use waflow_entities::{
    enums::{ButtonType, HeaderFormat, ParameterFormat, TemplateCategory, TemplateStatus},
    template,
};
use waflow_jobs::{
    Error,
    content::template_components::{Button, Components, Header},
    placeholders::Placeholders,
    templates::{NewTemplate, TemplateChanges, TemplateFilter},
};

use super::{GqlResult, connection, page_request, parse_id, scope, senders::Sender};

pub struct Template(pub template::Model);

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "TemplateHeaderInput")]
pub struct TemplateHeader {
    format: HeaderFormat,
    /// TEXT headers only; at most one placeholder, {{1}}.
    text: Option<String>,
    /// A sample for Meta's review, required where the header varies: a TEXT header's value for
    /// {{1}}; an IMAGE, VIDEO or DOCUMENT header's sample media as a header handle from Meta's
    /// Resumable Upload API (`POST /{app-id}/uploads`).
    example: Option<String>,
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "TemplateButtonInput")]
pub struct TemplateButton {
    r#type: ButtonType,
    text: String,
    /// URL buttons: may end with one placeholder, {{1}}, the suffix each send gives.
    url: Option<String>,
    phone_number: Option<String>,
    /// A sample for Meta's review: a COPY_CODE button's code (1 to 20 letters and digits), a
    /// dynamic URL button's full URL.
    example: Option<String>,
}

#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "TemplateComponentsInput")]
pub struct TemplateComponents {
    header: Option<TemplateHeader>,
    /// The message text, with numbered placeholders {{1}}..{{n}}.
    body: String,
    footer: Option<String>,
    #[graphql(default)]
    buttons: Vec<TemplateButton>,
    /// One sample value per body placeholder, which Meta's review requires.
    #[graphql(default)]
    body_examples: Vec<String>,
}

impl From<TemplateComponents> for Components {
    fn from(c: TemplateComponents) -> Self {
        Components {
            header: c.header.map(|h| Header {
                format: h.format,
                text: h.text,
                example: h.example,
            }),
            body: c.body,
            footer: c.footer,
            buttons: c
                .buttons
                .into_iter()
                .map(|b| Button {
                    r#type: b.r#type,
                    text: b.text,
                    url: b.url,
                    phone_number: b.phone_number,
                    example: b.example,
                })
                .collect(),
            body_examples: c.body_examples,
        }
    }
}

impl From<Components> for TemplateComponents {
    fn from(c: Components) -> Self {
        TemplateComponents {
            header: c.header.map(|h| TemplateHeader {
                format: h.format,
                text: h.text,
                example: h.example,
            }),
            body: c.body,
            footer: c.footer,
            buttons: c
                .buttons
                .into_iter()
                .map(|b| TemplateButton {
                    r#type: b.r#type,
                    text: b.text,
                    url: b.url,
                    phone_number: b.phone_number,
                    example: b.example,
                })
                .collect(),
            body_examples: c.body_examples,
        }
    }
}

impl Template {
    fn placeholders(&self) -> async_graphql::Result<Placeholders> {
        let body = Components::from_json(&self.0.components).gql()?.body;
        Placeholders::parse(&body).map_err(|e| super::to_gql(Error::Internal(e)))
    }
}

/// What `syncTemplates` did.
#[derive(SimpleObject)]
pub struct TemplateSyncResult {
    created: u32,
    updated: u32,
}

#[Object]
impl Template {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn sender(&self, ctx: &Context<'_>) -> async_graphql::Result<Sender> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .senders()
            .get(workspace_id, self.0.sender_id)
            .await
            .gql()
            .map(Sender)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn language(&self) -> &str {
        &self.0.language
    }
    async fn category(&self) -> TemplateCategory {
        self.0.category
    }
    async fn status(&self) -> TemplateStatus {
        self.0.status
    }
    /// Why the template was rejected, paused or disabled.
    async fn status_reason(&self) -> Option<&str> {
        self.0.status_reason.as_deref()
    }
    async fn components(&self) -> async_graphql::Result<TemplateComponents> {
        Components::from_json(&self.0.components)
            .gql()
            .map(Into::into)
    }
    /// Whether the body's placeholders are numbered ({{1}}) or named ({{customer_name}}).
    async fn parameter_format(&self) -> async_graphql::Result<ParameterFormat> {
        Ok(self.placeholders()?.format)
    }
    /// The body's placeholders in the order a send gives their values: "1".."n", or the names.
    async fn variable_names(&self) -> async_graphql::Result<Vec<String>> {
        Ok(self.placeholders()?.names)
    }
    /// How many values a send must give: the body's placeholders.
    async fn variable_count(&self) -> i32 {
        self.0.variable_count
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(InputObject)]
pub struct CreateTemplateInput {
    sender_id: ID,
    /// Lowercase letters, digits and underscores, like order_confirmed.
    name: String,
    /// A WhatsApp language code like en or en_US.
    language: String,
    category: TemplateCategory,
    components: TemplateComponents,
}

#[derive(InputObject)]
pub struct UpdateTemplateInput {
    category: Option<TemplateCategory>,
    components: Option<TemplateComponents>,
}

#[derive(Default)]
pub struct TemplateQuery;

#[Object]
impl TemplateQuery {
    async fn template(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Template> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("template"))?;
        services
            .templates()
            .get(workspace_id, id)
            .await
            .gql()
            .map(Template)
    }

    async fn templates(
        &self,
        ctx: &Context<'_>,
        sender_id: Option<ID>,
        status: Option<TemplateStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Template>> {
        let (services, workspace_id) = scope(ctx)?;
        let sender_id = sender_id
            .map(|id| parse_id(&id, || Error::SenderNotFound(id.to_string())))
            .transpose()?;
        let filter = TemplateFilter { sender_id, status };
        let page = services
            .templates()
            .list(workspace_id, filter, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |t| t.id, Template))
    }
}

#[derive(Default)]
pub struct TemplateMutation;

#[Object]
impl TemplateMutation {
    /// Creates a template in review (PENDING).
    async fn create_template(
        &self,
        ctx: &Context<'_>,
        input: CreateTemplateInput,
    ) -> async_graphql::Result<Template> {
        let (services, workspace_id) = scope(ctx)?;
        let sender_id = parse_id(&input.sender_id, || {
            Error::SenderNotFound(input.sender_id.to_string())
        })?;
        let new = NewTemplate {
            sender_id,
            name: input.name,
            language: input.language,
            category: input.category,
            components: input.components.into(),
        };
        services
            .templates()
            .create(workspace_id, new)
            .await
            .gql()
            .map(Template)
    }

    /// Edits a SANDBOX template, which sends it back to review (PENDING).
    async fn update_template(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateTemplateInput,
    ) -> async_graphql::Result<Template> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("template"))?;
        let changes = TemplateChanges {
            category: input.category,
            components: input.components.map(Into::into),
        };
        services
            .templates()
            .update(workspace_id, id, changes)
            .await
            .gql()
            .map(Template)
    }

    /// Plays Meta's review for a SANDBOX template; refused for CLOUD_API templates.
    async fn set_template_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: TemplateStatus,
        reason: Option<String>,
    ) -> async_graphql::Result<Template> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("template"))?;
        services
            .templates()
            .set_status(workspace_id, id, status, reason)
            .await
            .gql()
            .map(Template)
    }

    /// Reads every template of a CLOUD_API sender's business account from Meta and stores them
    /// with their current status.
    async fn sync_templates(
        &self,
        ctx: &Context<'_>,
        sender_id: ID,
    ) -> async_graphql::Result<TemplateSyncResult> {
        let (services, workspace_id) = scope(ctx)?;
        let sender_id = parse_id(&sender_id, || Error::SenderNotFound(sender_id.to_string()))?;
        let report = services
            .templates()
            .sync(workspace_id, sender_id)
            .await
            .gql()?;
        Ok(TemplateSyncResult {
            created: report.created,
            updated: report.updated,
        })
    }

    async fn delete_template(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("template"))?;
        services
            .templates()
            .delete(workspace_id, id)
            .await
            .gql()
            .map(ID::from)
    }
}
