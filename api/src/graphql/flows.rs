//! Automation flows: definitions, versions, runs and their steps. The inbound webhook secret is
//! shown once, when the flow is created or the secret rotated.

use async_graphql::{
    Context, ID, InputObject, Json, MaybeUndefined, Object, connection::Connection,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use waflow_entities::{
    enums::{RunStatus, StepStatus},
    flow, flow_run, flow_version, step_run,
};
use waflow_jobs::{Error, flows::FlowSettings};

use super::{GqlResult, connection, page_request, parse_id, scope};

pub struct Flow {
    model: flow::Model,
    /// Only right after creation or rotation.
    webhook_secret: Option<String>,
}

impl Flow {
    fn new(model: flow::Model) -> Self {
        Self {
            model,
            webhook_secret: None,
        }
    }
}

#[Object]
impl Flow {
    async fn id(&self) -> ID {
        self.model.id.into()
    }
    async fn name(&self) -> &str {
        &self.model.name
    }
    async fn description(&self) -> Option<&str> {
        self.model.description.as_deref()
    }
    /// The definition being edited; `publishFlow` freezes it as the next version.
    async fn draft(&self) -> Json<Value> {
        Json(self.model.draft.clone())
    }
    /// Whether the trigger starts runs (only a published flow can be enabled).
    async fn enabled(&self) -> bool {
        self.model.enabled
    }
    /// Why Waflow disabled the flow (a sender's quality fell to RED), if it did.
    async fn paused_reason(&self) -> Option<&str> {
        self.model.paused_reason.as_deref()
    }
    /// The version new runs use.
    async fn published_version(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<FlowVersion>> {
        let Some(number) = self.model.published_version else {
            return Ok(None);
        };
        let (services, _) = scope(ctx)?;
        Ok(services
            .flows()
            .version(&self.model, number)
            .await
            .gql()?
            .map(FlowVersion))
    }
    /// Every published version, oldest first.
    async fn versions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<FlowVersion>> {
        let (services, _) = scope(ctx)?;
        let versions = services.flows().versions(&self.model).await.gql()?;
        Ok(versions.into_iter().map(FlowVersion).collect())
    }
    /// A flow run with the failure as its trigger when a run of this flow fails.
    async fn on_error_flow_id(&self) -> Option<ID> {
        self.model.on_error_flow_id.map(Into::into)
    }
    /// Where a `webhook` trigger takes its POSTs, below the server's public URL.
    async fn webhook_path(&self) -> String {
        format!("/hooks/flows/{}", self.model.id)
    }
    /// The inbound webhook's secret: in the answer of `createFlow` and
    /// `rotateFlowWebhookSecret` only.
    async fn webhook_secret(&self) -> Option<&str> {
        self.webhook_secret.as_deref()
    }
    async fn runs(
        &self,
        ctx: &Context<'_>,
        status: Option<RunStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, FlowRun>> {
        let (services, workspace_id) = scope(ctx)?;
        let page = services
            .flows()
            .runs(
                workspace_id,
                Some(self.model.id),
                status,
                page_request(first, after)?,
            )
            .await
            .gql()?;
        Ok(connection(page, |r| r.id, FlowRun))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
}

pub struct FlowVersion(flow_version::Model);

#[Object]
impl FlowVersion {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn definition(&self) -> Json<Value> {
        Json(self.0.definition.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct FlowRun(flow_run::Model);

#[Object]
impl FlowRun {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn flow(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Flow>> {
        let (services, workspace_id) = scope(ctx)?;
        match services.flows().get(workspace_id, self.0.flow_id).await {
            Ok(flow) => Ok(Some(Flow::new(flow))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e).gql(),
        }
    }
    /// The version the run is pinned to.
    async fn version(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        let (services, _) = scope(ctx)?;
        Ok(services
            .flows()
            .version_by_id(self.0.flow_version_id)
            .await
            .gql()?
            .map(|v| v.version))
    }
    async fn status(&self) -> RunStatus {
        self.0.status
    }
    /// What started it: message_received, conversation_started, conversation_ended, schedule,
    /// webhook, event, manual, flow_failed.
    async fn trigger_type(&self) -> &str {
        &self.0.trigger_type
    }
    /// The trigger's payload, as templates see it under `trigger`.
    async fn trigger(&self) -> Json<Value> {
        Json(self.0.trigger_payload.clone())
    }
    /// Variables set by `set_variables` steps.
    async fn vars(&self) -> Json<Value> {
        Json(
            self.0
                .state
                .get("vars")
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
        )
    }
    async fn concurrency_key(&self) -> Option<&str> {
        self.0.concurrency_key.as_deref()
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// One entry per step execution (a loop's steps once per item, a retried step per attempt).
    async fn steps(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<StepRun>> {
        let (services, _) = scope(ctx)?;
        let steps = services.flows().steps(&self.0).await.gql()?;
        Ok(steps.into_iter().map(StepRun).collect())
    }
}

pub struct StepRun(step_run::Model);

#[Object]
impl StepRun {
    async fn step_id(&self) -> &str {
        &self.0.step_id
    }
    async fn r#type(&self) -> &str {
        &self.0.step_type
    }
    async fn status(&self) -> StepStatus {
        self.0.status
    }
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    /// The loop item indices around the step (`"2"`, `"2.0"`); empty outside loops.
    async fn iteration(&self) -> &str {
        &self.0.iteration
    }
    /// The step's parameters, rendered.
    async fn input(&self) -> Option<Json<Value>> {
        self.0.input.clone().map(Json)
    }
    async fn output(&self) -> Option<Json<Value>> {
        self.0.output.clone().map(Json)
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

#[derive(InputObject)]
pub struct CreateFlowInput {
    name: String,
    description: Option<String>,
    /// The flow definition: `{trigger, concurrencyKey, steps}` (see the README's Flows section).
    definition: Json<Value>,
    on_error_flow_id: Option<ID>,
}

#[derive(InputObject)]
pub struct UpdateFlowInput {
    name: Option<String>,
    description: Option<String>,
    definition: Option<Json<Value>>,
    /// Null removes the error handler.
    on_error_flow_id: MaybeUndefined<ID>,
}

fn flow_id(id: &ID) -> async_graphql::Result<uuid::Uuid> {
    parse_id(id, || Error::NotFound("flow"))
}

fn handler_id(id: &ID) -> async_graphql::Result<uuid::Uuid> {
    parse_id(id, || {
        Error::field("onErrorFlowId", "no such flow in this workspace")
    })
}

#[derive(Default)]
pub struct FlowQuery;

#[Object]
impl FlowQuery {
    async fn flow(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Flow> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .flows()
            .get(workspace_id, flow_id(&id)?)
            .await
            .gql()
            .map(Flow::new)
    }

    async fn flows(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Flow>> {
        let (services, workspace_id) = scope(ctx)?;
        let page = services
            .flows()
            .list(workspace_id, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |f| f.id, Flow::new))
    }

    async fn flow_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<FlowRun> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("flow run"))?;
        services
            .flows()
            .run(workspace_id, id)
            .await
            .gql()
            .map(FlowRun)
    }

    /// Runs oldest first, of one flow or all, in one status or all.
    async fn flow_runs(
        &self,
        ctx: &Context<'_>,
        flow_id: Option<ID>,
        status: Option<RunStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, FlowRun>> {
        let (services, workspace_id) = scope(ctx)?;
        let flow = flow_id.as_ref().map(self::flow_id).transpose()?;
        let page = services
            .flows()
            .runs(workspace_id, flow, status, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |r| r.id, FlowRun))
    }
}

#[derive(Default)]
pub struct FlowMutation;

#[Object]
impl FlowMutation {
    /// Creates a flow (disabled, unpublished) with a draft definition, validated.
    async fn create_flow(
        &self,
        ctx: &Context<'_>,
        input: CreateFlowInput,
    ) -> async_graphql::Result<Flow> {
        let (services, workspace_id) = scope(ctx)?;
        let settings = FlowSettings {
            name: Some(input.name),
            description: input.description,
            definition: Some(input.definition.0),
            on_error_flow_id: Some(
                input
                    .on_error_flow_id
                    .as_ref()
                    .map(handler_id)
                    .transpose()?,
            ),
        };
        let (model, secret) = services
            .flows()
            .create(workspace_id, settings)
            .await
            .gql()?;
        Ok(Flow {
            model,
            webhook_secret: Some(secret),
        })
    }

    /// Edits the draft; runs keep using the published version until the next `publishFlow`.
    async fn update_flow(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateFlowInput,
    ) -> async_graphql::Result<Flow> {
        let (services, workspace_id) = scope(ctx)?;
        let settings = FlowSettings {
            name: input.name,
            description: input.description,
            definition: input.definition.map(|d| d.0),
            on_error_flow_id: match &input.on_error_flow_id {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(id) => Some(Some(handler_id(id)?)),
            },
        };
        services
            .flows()
            .update(workspace_id, flow_id(&id)?, settings)
            .await
            .gql()
            .map(Flow::new)
    }

    /// Validates the draft and freezes it as the next version.
    async fn publish_flow(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Flow> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .flows()
            .publish(workspace_id, flow_id(&id)?)
            .await
            .gql()
            .map(Flow::new)
    }

    async fn set_flow_enabled(
        &self,
        ctx: &Context<'_>,
        id: ID,
        enabled: bool,
    ) -> async_graphql::Result<Flow> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .flows()
            .set_enabled(workspace_id, flow_id(&id)?, enabled)
            .await
            .gql()
            .map(Flow::new)
    }

    /// Deletes a flow with its versions and runs. Returns its id.
    async fn delete_flow(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .flows()
            .delete(workspace_id, flow_id(&id)?)
            .await
            .gql()
            .map(ID::from)
    }

    /// A new inbound webhook secret, shown in this answer only; the old one stops working.
    async fn rotate_flow_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Flow> {
        let (services, workspace_id) = scope(ctx)?;
        let (model, secret) = services
            .flows()
            .rotate_webhook_secret(workspace_id, flow_id(&id)?)
            .await
            .gql()?;
        Ok(Flow {
            model,
            webhook_secret: Some(secret),
        })
    }

    /// Runs the flow's published version now with `payload` as its trigger.
    async fn run_flow(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default_with = "Json(Value::Object(Default::default()))")] payload: Json<Value>,
    ) -> async_graphql::Result<FlowRun> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .flows()
            .run_flow(workspace_id, flow_id(&id)?, payload.0)
            .await
            .gql()
            .map(FlowRun)
    }

    /// Sends a custom event: every enabled flow with an `event` trigger of this name starts.
    /// Answers the ids of the runs started.
    async fn emit_event(
        &self,
        ctx: &Context<'_>,
        name: String,
        payload: Json<Value>,
    ) -> async_graphql::Result<Vec<ID>> {
        let (services, workspace_id) = scope(ctx)?;
        let runs = services
            .flows()
            .emit_event(workspace_id, &name, payload.0)
            .await
            .gql()?;
        Ok(runs.into_iter().map(|r| r.id.into()).collect())
    }

    async fn cancel_flow_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<FlowRun> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("flow run"))?;
        services
            .flows()
            .cancel(workspace_id, id)
            .await
            .gql()
            .map(FlowRun)
    }

    /// Runs a FAILED run again from the step that failed, or (fromFailedStep: false) from the
    /// start as a new run with the same trigger.
    async fn retry_flow_run(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = true)] from_failed_step: bool,
    ) -> async_graphql::Result<FlowRun> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("flow run"))?;
        services
            .flows()
            .retry(workspace_id, id, from_failed_step)
            .await
            .gql()
            .map(FlowRun)
    }
}
