//! Contacts, and erasing one with everything said with it.

use async_graphql::{
    Context, ID, InputObject, Json, Object, SimpleObject, Upload, connection::Connection,
};
use chrono::{DateTime, Utc};
use waflow_entities::contact;
use waflow_jobs::{
    Error,
    contacts::{ContactChanges, ContactFilter, NewContact},
};

use super::{GqlResult, connection, page_request, parse_id, scope};

pub struct Contact(contact::Model);

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// E.164, like +14155551234; null for a customer who hides their number behind a WhatsApp
    /// username (then `userId` names them).
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    /// WhatsApp's id for the customer's number (digits), once they wrote; in Brazil, Mexico and
    /// Argentina it may differ from `phone`, and messages go to it.
    async fn wa_id(&self) -> Option<&str> {
        self.0.wa_id.as_deref()
    }
    /// Meta's business-scoped user id (like US.13491208655302741918), once WhatsApp gave it.
    /// Accepted wherever a message's `to` is.
    async fn user_id(&self) -> Option<&str> {
        self.0.user_id.as_deref()
    }
    /// The customer's WhatsApp username, when they have one.
    async fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// Free-form data about the contact (a JSON object).
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
    }
    /// An opted-out contact receives nothing from Waflow.
    async fn tags(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let (services, _) = scope(ctx)?;
        services.contacts().tags(self.0.id).await.gql()
    }
    async fn opted_out(&self) -> bool {
        self.0.opted_out
    }
    async fn opted_out_at(&self) -> Option<DateTime<Utc>> {
        self.0.opted_out_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// What an import did.
#[derive(SimpleObject)]
pub struct ContactImport {
    created: u64,
    updated: u64,
    /// The rows skipped, with their line (the first 1000).
    invalid: Vec<InvalidContactRow>,
    invalid_count: u64,
}

#[derive(SimpleObject)]
pub struct InvalidContactRow {
    line: u64,
    phone: String,
    reason: String,
}

/// What `deleteContact` removed.
#[derive(SimpleObject)]
pub struct ContactErasure {
    contact_id: ID,
    conversations_deleted: u64,
    messages_deleted: u64,
}

#[derive(InputObject)]
pub struct CreateContactInput {
    /// E.164, like +14155551234.
    phone: String,
    name: Option<String>,
    /// A JSON object.
    attributes: Option<Json<serde_json::Value>>,
    tags: Option<Vec<String>>,
}

/// Which contacts to list; every field given narrows the list.
#[derive(InputObject, Default)]
pub struct ContactFilterInput {
    /// Contacts with every one of these tags.
    #[graphql(default)]
    tags: Vec<String>,
    /// Contacts whose attributes have these values, like {"plan": "gold"} (strings, compared as
    /// text).
    attributes: Option<Json<serde_json::Map<String, serde_json::Value>>>,
    opted_out: Option<bool>,
}

#[derive(InputObject)]
pub struct UpdateContactInput {
    name: Option<String>,
    /// Replaces all attributes; a JSON object.
    attributes: Option<Json<serde_json::Value>>,
    opted_out: Option<bool>,
    /// Replaces all tags.
    tags: Option<Vec<String>>,
}

#[derive(Default)]
pub struct ContactQuery;

#[Object]
impl ContactQuery {
    async fn contact(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Contact> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("contact"))?;
        services
            .contacts()
            .get(workspace_id, id)
            .await
            .gql()
            .map(Contact)
    }

    /// `search` matches part of the phone number or of the name (ignoring case); `filter`
    /// narrows by tags, attributes and opt-out.
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        filter: Option<ContactFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Contact>> {
        let (services, workspace_id) = scope(ctx)?;
        let filter = filter.unwrap_or_default();
        let filter = ContactFilter {
            search,
            tags: filter.tags,
            attributes: filter.attributes.map(|a| a.0).unwrap_or_default(),
            opted_out: filter.opted_out,
        };
        let page = services
            .contacts()
            .list(workspace_id, filter, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |c| c.id, Contact))
    }
}

#[derive(Default)]
pub struct ContactMutation;

#[Object]
impl ContactMutation {
    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInput,
    ) -> async_graphql::Result<Contact> {
        let (services, workspace_id) = scope(ctx)?;
        let new = NewContact {
            phone: input.phone,
            name: input.name,
            attributes: input.attributes.map(|j| j.0),
            tags: input.tags,
        };
        services
            .contacts()
            .create(workspace_id, new)
            .await
            .gql()
            .map(Contact)
    }

    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateContactInput,
    ) -> async_graphql::Result<Contact> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("contact"))?;
        let changes = ContactChanges {
            name: input.name,
            attributes: input.attributes.map(|j| j.0),
            opted_out: input.opted_out,
            tags: input.tags,
        };
        services
            .contacts()
            .update(workspace_id, id, changes)
            .await
            .gql()
            .map(Contact)
    }

    /// Imports contacts from an uploaded CSV (a GraphQL multipart request), like
    /// `POST /api/contacts/import`, which takes larger files than the API's 1 MiB request limit.
    async fn import_contacts(
        &self,
        ctx: &Context<'_>,
        csv: Upload,
    ) -> async_graphql::Result<ContactImport> {
        let (services, workspace_id) = scope(ctx)?;
        // Bounded by the request limit, so held in memory.
        let content = csv.value(ctx)?.content;
        let report = services
            .contacts()
            .import_csv(workspace_id, std::io::Cursor::new(content))
            .await
            .gql()?;
        Ok(ContactImport {
            created: report.created,
            updated: report.updated,
            invalid_count: report.invalid_count,
            invalid: report
                .invalid
                .into_iter()
                .map(|r| InvalidContactRow {
                    line: r.line,
                    phone: r.phone,
                    reason: r.reason,
                })
                .collect(),
        })
    }

    /// Erases a contact with all its conversations and messages (right to erasure), and says
    /// how many rows went.
    async fn delete_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ContactErasure> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("contact"))?;
        let erasure = services.contacts().delete(workspace_id, id).await.gql()?;
        Ok(ContactErasure {
            contact_id: erasure.contact_id.into(),
            conversations_deleted: erasure.conversations,
            messages_deleted: erasure.messages,
        })
    }
}
