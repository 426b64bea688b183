//! Senders: WhatsApp numbers. Their provider secrets are accepted here and never returned.

use async_graphql::{
    Context, ID, InputObject, MaybeUndefined, Object, SimpleObject, connection::Connection,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use waflow_entities::{
    enums::{QualityRating, SenderProvider, SenderStatus},
    sender,
};
use waflow_jobs::{
    Error,
    senders::{CloudApiChanges, CloudApiCredentials, NewSender, SenderChanges},
};

use super::{GqlResult, connection, page_request, parse_id, scope};

pub struct Sender(pub sender::Model);

/// A Cloud API sender's connection settings. Secrets show only whether they are set.
#[derive(SimpleObject)]
pub struct CloudApiSettings {
    phone_number_id: Option<String>,
    business_account_id: Option<String>,
    api_base_url: Option<String>,
    access_token_set: bool,
    app_secret_set: bool,
    verify_token_set: bool,
}

#[Object]
impl Sender {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// E.164, like +14155551234.
    async fn phone_number(&self) -> &str {
        &self.0.phone_number
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn provider(&self) -> SenderProvider {
        self.0.provider
    }
    async fn status(&self) -> SenderStatus {
        self.0.status
    }
    /// Why the sender is offline, when it is.
    async fn status_reason(&self) -> Option<&str> {
        self.0.status_reason.as_deref()
    }
    async fn quality_rating(&self) -> QualityRating {
        self.0.quality_rating
    }
    async fn messaging_limit_tier(&self) -> Option<&str> {
        self.0.messaging_limit_tier.as_deref()
    }
    /// The most messages per second Waflow sends from this number.
    async fn messages_per_second(&self) -> i32 {
        self.0.messages_per_second
    }
    /// A conversation ends after this many seconds without a message.
    async fn inactivity_timeout_seconds(&self) -> i32 {
        self.0.inactivity_timeout_seconds
    }
    /// Whether MARKETING templates still go out while the quality rating is RED.
    async fn allow_marketing_on_low_quality(&self) -> bool {
        self.0.allow_marketing_on_low_quality
    }
    /// The assistant that answers inbound messages automatically, if any.
    async fn assistant(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::assistants::Assistant>> {
        super::assistants::Assistant::load(ctx, self.0.assistant_id).await
    }
    async fn cloud_api(&self) -> Option<CloudApiSettings> {
        (self.0.provider == SenderProvider::CloudApi).then(|| CloudApiSettings {
            phone_number_id: self.0.phone_number_id.clone(),
            business_account_id: self.0.business_account_id.clone(),
            api_base_url: self.0.api_base_url.clone(),
            access_token_set: self.0.access_token_enc.is_some(),
            app_secret_set: self.0.app_secret_enc.is_some(),
            verify_token_set: self.0.verify_token_enc.is_some(),
        })
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Meta WhatsApp Cloud API credentials, from the app's WhatsApp settings in Meta for Developers.
#[derive(InputObject)]
pub struct CloudApiInput {
    phone_number_id: String,
    business_account_id: String,
    access_token: String,
    app_secret: String,
    verify_token: String,
    /// Defaults to Meta's Graph API.
    api_base_url: Option<String>,
}

#[derive(InputObject)]
pub struct CreateSenderInput {
    /// E.164, like +14155551234.
    phone_number: String,
    display_name: String,
    provider: SenderProvider,
    /// Required for CLOUD_API, refused for SANDBOX.
    cloud_api: Option<CloudApiInput>,
    /// Default 80, Cloud API's default throughput.
    messages_per_second: Option<i32>,
    /// Default 1800 (30 minutes).
    inactivity_timeout_seconds: Option<i32>,
    /// An assistant that answers every inbound message automatically.
    assistant_id: Option<ID>,
}

/// Only the credentials given are replaced.
#[derive(InputObject)]
pub struct UpdateCloudApiInput {
    phone_number_id: Option<String>,
    business_account_id: Option<String>,
    access_token: Option<String>,
    app_secret: Option<String>,
    verify_token: Option<String>,
    api_base_url: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateSenderInput {
    display_name: Option<String>,
    /// Override: keep sending MARKETING templates while the quality rating is RED.
    allow_marketing_on_low_quality: Option<bool>,
    /// SANDBOX senders only: a CLOUD_API sender's status comes from Meta.
    status: Option<SenderStatus>,
    cloud_api: Option<UpdateCloudApiInput>,
    messages_per_second: Option<i32>,
    inactivity_timeout_seconds: Option<i32>,
    /// An assistant that answers every inbound message automatically; null stops auto-reply.
    assistant_id: MaybeUndefined<ID>,
}

/// An assistant id from an input: one that cannot be parsed names no assistant.
fn assistant_id(id: &ID) -> async_graphql::Result<Uuid> {
    parse_id(id, || Error::field("assistantId", "no such assistant"))
}

#[derive(Default)]
pub struct SenderQuery;

#[Object]
impl SenderQuery {
    async fn sender(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Sender> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("sender"))?;
        services
            .senders()
            .get(workspace_id, id)
            .await
            .gql()
            .map(Sender)
    }

    async fn senders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Sender>> {
        let (services, workspace_id) = scope(ctx)?;
        let page = services
            .senders()
            .list(workspace_id, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |s| s.id, Sender))
    }
}

#[derive(Default)]
pub struct SenderMutation;

#[Object]
impl SenderMutation {
    async fn create_sender(
        &self,
        ctx: &Context<'_>,
        input: CreateSenderInput,
    ) -> async_graphql::Result<Sender> {
        let (services, workspace_id) = scope(ctx)?;
        let new = NewSender {
            phone_number: input.phone_number,
            display_name: input.display_name,
            provider: input.provider,
            cloud_api: input.cloud_api.map(|c| CloudApiCredentials {
                phone_number_id: c.phone_number_id,
                business_account_id: c.business_account_id,
                access_token: c.access_token,
                app_secret: c.app_secret,
                verify_token: c.verify_token,
                api_base_url: c.api_base_url,
            }),
            messages_per_second: input.messages_per_second,
            inactivity_timeout_seconds: input.inactivity_timeout_seconds,
            assistant_id: input.assistant_id.as_ref().map(assistant_id).transpose()?,
        };
        services
            .senders()
            .create(workspace_id, new)
            .await
            .gql()
            .map(Sender)
    }

    async fn update_sender(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateSenderInput,
    ) -> async_graphql::Result<Sender> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("sender"))?;
        let changes = SenderChanges {
            display_name: input.display_name,
            allow_marketing_on_low_quality: input.allow_marketing_on_low_quality,
            status: input.status,
            cloud_api: input.cloud_api.map(|c| CloudApiChanges {
                phone_number_id: c.phone_number_id,
                business_account_id: c.business_account_id,
                access_token: c.access_token,
                app_secret: c.app_secret,
                verify_token: c.verify_token,
                api_base_url: c.api_base_url,
            }),
            messages_per_second: input.messages_per_second,
            inactivity_timeout_seconds: input.inactivity_timeout_seconds,
            assistant_id: match &input.assistant_id {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(id) => Some(Some(assistant_id(id)?)),
            },
        };
        services
            .senders()
            .update(workspace_id, id, changes)
            .await
            .gql()
            .map(Sender)
    }

    /// Deletes a sender and its templates; conversations keep their history. Returns its id.
    async fn delete_sender(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("sender"))?;
        services
            .senders()
            .delete(workspace_id, id)
            .await
            .gql()
            .map(ID::from)
    }
}
