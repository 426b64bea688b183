//! Outgoing webhook endpoints and their deliveries. The signing secret is shown once.

use async_graphql::{Context, ID, InputObject, Json, Object, connection::Connection};
use chrono::{DateTime, Utc};
use waflow_entities::{
    enums::{DeliveryStatus, WebhookEvent},
    webhook_delivery, webhook_endpoint,
};
use waflow_jobs::{Error, webhooks::EndpointSettings};

use super::{GqlResult, connection, page_request, parse_id, scope};

pub struct WebhookEndpoint {
    model: webhook_endpoint::Model,
    secret: Option<String>,
}

#[Object]
impl WebhookEndpoint {
    async fn id(&self) -> ID {
        self.model.id.into()
    }
    async fn url(&self) -> &str {
        &self.model.url
    }
    async fn events(&self) -> Vec<WebhookEvent> {
        serde_json::from_value(self.model.events.clone()).unwrap_or_default()
    }
    async fn description(&self) -> Option<&str> {
        self.model.description.as_deref()
    }
    async fn enabled(&self) -> bool {
        self.model.enabled
    }
    /// Signs every delivery (X-Waflow-Signature); only in `createWebhookEndpoint`'s answer.
    async fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
}

pub struct WebhookDelivery(webhook_delivery::Model);

#[Object]
impl WebhookDelivery {
    /// Also sent as X-Waflow-Delivery, the same on every attempt.
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn endpoint_id(&self) -> ID {
        self.0.endpoint_id.into()
    }
    /// Like `conversation.ended`.
    async fn event(&self) -> &str {
        &self.0.event_type
    }
    async fn status(&self) -> DeliveryStatus {
        self.0.status
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The receiver's last HTTP status.
    async fn response_status(&self) -> Option<i32> {
        self.0.response_status
    }
    /// What went wrong last, with the start of the receiver's answer.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
    /// The JSON body sent.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
}

#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    url: String,
    events: Vec<WebhookEvent>,
    description: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    url: Option<String>,
    events: Option<Vec<WebhookEvent>>,
    description: Option<String>,
    enabled: Option<bool>,
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, WebhookEndpoint>> {
        let (services, workspace_id) = scope(ctx)?;
        let page = services
            .webhooks()
            .list(workspace_id, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(
            page,
            |e| e.id,
            |model| WebhookEndpoint {
                model,
                secret: None,
            },
        ))
    }

    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: Option<ID>,
        status: Option<DeliveryStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, WebhookDelivery>> {
        let (services, workspace_id) = scope(ctx)?;
        let endpoint_id = endpoint_id
            .map(|id| parse_id(&id, || Error::NotFound("webhook endpoint")))
            .transpose()?;
        let page = services
            .webhooks()
            .deliveries(
                workspace_id,
                endpoint_id,
                status,
                page_request(first, after)?,
            )
            .await
            .gql()?;
        Ok(connection(page, |d| d.id, WebhookDelivery))
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers a URL for events; the answer carries the signing `secret`, shown this once.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> async_graphql::Result<WebhookEndpoint> {
        let (services, workspace_id) = scope(ctx)?;
        let settings = EndpointSettings {
            url: Some(input.url),
            events: Some(input.events),
            description: input.description,
            enabled: None,
        };
        let (model, secret) = services
            .webhooks()
            .create(workspace_id, settings)
            .await
            .gql()?;
        Ok(WebhookEndpoint {
            model,
            secret: Some(secret),
        })
    }

    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookEndpointInput,
    ) -> async_graphql::Result<WebhookEndpoint> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("webhook endpoint"))?;
        let settings = EndpointSettings {
            url: input.url,
            events: input.events,
            description: input.description,
            enabled: input.enabled,
        };
        let model = services
            .webhooks()
            .update(workspace_id, id, settings)
            .await
            .gql()?;
        Ok(WebhookEndpoint {
            model,
            secret: None,
        })
    }

    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ID> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("webhook endpoint"))?;
        services
            .webhooks()
            .delete(workspace_id, id)
            .await
            .gql()
            .map(ID::from)
    }

    /// Sends a delivery again now, with the same id.
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> async_graphql::Result<WebhookDelivery> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&delivery_id, || Error::NotFound("webhook delivery"))?;
        services
            .webhooks()
            .redeliver(workspace_id, id)
            .await
            .gql()
            .map(WebhookDelivery)
    }
}
