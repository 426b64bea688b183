//! The calling workspace and its API keys.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use waflow_entities::{api_key, workspace};

use super::{GqlResult, parse_id, scope};

pub struct Workspace(workspace::Model);

#[Object]
impl Workspace {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// An API key. `key` is its secret and is returned once, by `createApiKey`; afterwards only
/// `prefix` identifies it.
pub struct ApiKey {
    model: api_key::Model,
    key: Option<String>,
}

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        self.model.id.into()
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    /// The first characters of the key, to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.model.prefix
    }
    /// The key itself: only in the answer to `createApiKey`, null everywhere else.
    async fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.model.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.model.revoked_at
    }
}

#[derive(Default)]
pub struct WorkspaceQuery;

#[Object]
impl WorkspaceQuery {
    /// The workspace the API key belongs to.
    async fn workspace(&self, ctx: &Context<'_>) -> async_graphql::Result<Workspace> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .workspaces()
            .get(workspace_id)
            .await
            .gql()
            .map(Workspace)
    }

    /// The workspace's API keys, revoked ones included.
    async fn api_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiKey>> {
        let (services, workspace_id) = scope(ctx)?;
        let keys = services.api_keys().list(workspace_id).await.gql()?;
        Ok(keys
            .into_iter()
            .map(|model| ApiKey { model, key: None })
            .collect())
    }
}

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// What the key is for ("zapier", "frontend").
    name: String,
}

#[derive(Default)]
pub struct WorkspaceMutation;

#[Object]
impl WorkspaceMutation {
    /// Creates a key; the answer is the only time its secret `key` is shown.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> async_graphql::Result<ApiKey> {
        let (services, workspace_id) = scope(ctx)?;
        let created = services
            .api_keys()
            .create(workspace_id, &input.name)
            .await
            .gql()?;
        Ok(ApiKey {
            model: created.model,
            key: Some(created.plaintext),
        })
    }

    /// Revokes a key at once; requests with it are refused from then on.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ApiKey> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || waflow_jobs::Error::NotFound("API key"))?;
        let model = services.api_keys().revoke(workspace_id, id).await.gql()?;
        Ok(ApiKey { model, key: None })
    }
}
