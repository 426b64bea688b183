//! Automation flows: a definition (trigger, then steps) edited as a draft, published as
//! immutable versions, and run durably as jobs on their own queue. This module is the service
//! the API calls; `engine` runs runs, `triggers` starts them from events.

pub mod definition;
pub mod dry_run;
pub mod engine;
mod executor;
mod interpreter;
mod lease;
pub mod limits;
pub mod reconcile;
pub mod replies;
pub mod retention;
pub mod runs;
pub mod schedule;
pub mod state;
pub mod steps;
pub mod triggers;
pub mod validate;
pub mod versions;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::Value;
use uuid::Uuid;
use waflow_entities::{enums::RunStatus, flow, flow_run, flow_version, step_run};

use crate::{
    Services,
    context::find_in_workspace,
    error::{Error, Result},
    pagination::{Page, PageRequest, paginate},
    validation::Problems,
};

pub use crate::queue::FlowJob;

/// What `createFlow` and `updateFlow` take; on update only what is given changes.
#[derive(Debug, Clone, Default)]
pub struct FlowSettings {
    pub name: Option<String>,
    pub description: Option<String>,
    pub definition: Option<Value>,
    /// `Some(None)` removes the error handler.
    pub on_error_flow_id: Option<Option<Uuid>>,
}

pub struct FlowService<'a> {
    pub(crate) services: &'a Services,
}

impl Services {
    pub fn flows(&self) -> FlowService<'_> {
        FlowService { services: self }
    }
}

/// A fresh secret for a flow's inbound webhook.
fn new_webhook_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("whfl_{}", hex::encode(bytes))
}

impl FlowService<'_> {
    pub async fn get(&self, workspace_id: Uuid, id: Uuid) -> Result<flow::Model> {
        find_in_workspace!(&self.services.db, flow, workspace_id, id, "flow")
    }

    pub async fn list(&self, workspace_id: Uuid, page: PageRequest) -> Result<Page<flow::Model>> {
        let select = flow::Entity::find().filter(flow::Column::WorkspaceId.eq(workspace_id));
        paginate(&self.services.db, select, flow::Column::Id, page).await
    }

    /// Creates a flow (disabled, unpublished) with a valid draft; answers it and its webhook
    /// secret, which is shown this once.
    pub async fn create(
        &self,
        workspace_id: Uuid,
        s: FlowSettings,
    ) -> Result<(flow::Model, String)> {
        let name = s.name.clone().unwrap_or_default();
        let mut problems = Problems::new();
        problems.text("name", &name, 200);
        problems.into_result()?;
        let definition = s
            .definition
            .clone()
            .ok_or_else(|| Error::field("definition", "is required"))?;
        validate::validate(self.services, workspace_id, &definition).await?;
        if let Some(Some(handler)) = s.on_error_flow_id {
            self.ensure_handler(workspace_id, handler).await?;
        }
        let secret = new_webhook_secret();
        let now = Utc::now();
        let created = flow::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            name: Set(name.trim().to_owned()),
            description: Set(s.description.filter(|d| !d.trim().is_empty())),
            draft: Set(definition),
            enabled: Set(false),
            published_version: Set(None),
            webhook_secret_enc: Set(Some(self.services.secrets.encrypt(&secret))),
            on_error_flow_id: Set(s.on_error_flow_id.flatten()),
            paused_reason: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.services.db)
        .await?;
        Ok((created, secret))
    }

    async fn ensure_handler(&self, workspace_id: Uuid, id: Uuid) -> Result<()> {
        self.get(workspace_id, id)
            .await
            .map_err(|_| Error::field("onErrorFlowId", "no such flow in this workspace"))
            .map(|_| ())
    }

    /// Edits the draft (and name, description, error handler); the published version is untouched.
    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        s: FlowSettings,
    ) -> Result<flow::Model> {
        let current = self.get(workspace_id, id).await?;
        let mut problems = Problems::new();
        if let Some(name) = &s.name {
            problems.text("name", name, 200);
        }
        problems.into_result()?;
        if let Some(definition) = &s.definition {
            validate::validate(self.services, workspace_id, definition).await?;
        }
        if let Some(Some(handler)) = s.on_error_flow_id {
            if handler == id {
                return Err(Error::field(
                    "onErrorFlowId",
                    "a flow cannot handle its own errors",
                ));
            }
            self.ensure_handler(workspace_id, handler).await?;
        }
        let mut model: flow::ActiveModel = current.into();
        if let Some(name) = s.name {
            model.name = Set(name.trim().to_owned());
        }
        if let Some(description) = s.description {
            model.description = Set(Some(description).filter(|d| !d.trim().is_empty()));
        }
        if let Some(definition) = s.definition {
            model.draft = Set(definition);
        }
        if let Some(handler) = s.on_error_flow_id {
            model.on_error_flow_id = Set(handler);
        }
        model.updated_at = Set(Utc::now());
        Ok(model.update(&self.services.db).await?)
    }

    /// Validates the draft and freezes it as the next version; new runs use it.
    pub async fn publish(&self, workspace_id: Uuid, id: Uuid) -> Result<flow::Model> {
        let current = self.get(workspace_id, id).await?;
        validate::validate(self.services, workspace_id, &current.draft).await?;
        let txn = crate::db::begin_write(&self.services.db).await?;
        let latest = flow_version::Entity::find()
            .filter(flow_version::Column::FlowId.eq(id))
            .order_by_desc(flow_version::Column::Version)
            .one(&txn)
            .await?
            .map_or(0, |v| v.version);
        let version = latest + 1;
        flow_version::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            flow_id: Set(id),
            version: Set(version),
            definition: Set(current.draft.clone()),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await?;
        let mut model: flow::ActiveModel = current.into();
        model.published_version = Set(Some(version));
        model.updated_at = Set(Utc::now());
        let flow = model.update(&txn).await?;
        triggers::index(&txn, &flow).await?;
        txn.commit().await?;
        Ok(flow)
    }

    /// Turns a published flow's trigger on or off.
    pub async fn set_enabled(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        enabled: bool,
    ) -> Result<flow::Model> {
        let current = self.get(workspace_id, id).await?;
        if enabled && current.published_version.is_none() {
            return Err(Error::field("id", "publish the flow before enabling it"));
        }
        let txn = crate::db::begin_write(&self.services.db).await?;
        let mut model: flow::ActiveModel = current.into();
        model.enabled = Set(enabled);
        model.paused_reason = Set(None);
        model.updated_at = Set(Utc::now());
        let flow = model.update(&txn).await?;
        triggers::index(&txn, &flow).await?;
        txn.commit().await?;
        Ok(flow)
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<Uuid> {
        let flow = self.get(workspace_id, id).await?;
        flow::Entity::delete_by_id(flow.id)
            .exec(&self.services.db)
            .await?;
        Ok(flow.id)
    }

    /// A new secret for the flow's inbound webhook; the old one stops working.
    pub async fn rotate_webhook_secret(
        &self,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<(flow::Model, String)> {
        let current = self.get(workspace_id, id).await?;
        let secret = new_webhook_secret();
        let mut model: flow::ActiveModel = current.into();
        model.webhook_secret_enc = Set(Some(self.services.secrets.encrypt(&secret)));
        model.updated_at = Set(Utc::now());
        Ok((model.update(&self.services.db).await?, secret))
    }

    pub async fn versions(&self, flow: &flow::Model) -> Result<Vec<flow_version::Model>> {
        Ok(flow_version::Entity::find()
            .filter(flow_version::Column::FlowId.eq(flow.id))
            .order_by_asc(flow_version::Column::Version)
            .all(&self.services.db)
            .await?)
    }

    pub async fn version(
        &self,
        flow: &flow::Model,
        version: i32,
    ) -> Result<Option<flow_version::Model>> {
        Ok(flow_version::Entity::find()
            .filter(flow_version::Column::FlowId.eq(flow.id))
            .filter(flow_version::Column::Version.eq(version))
            .one(&self.services.db)
            .await?)
    }

    pub async fn version_by_id(&self, id: Uuid) -> Result<Option<flow_version::Model>> {
        Ok(flow_version::Entity::find_by_id(id)
            .one(&self.services.db)
            .await?)
    }

    /// Starts a run of the flow's published version with `payload` as its trigger, enabled or
    /// not (a manual run, a test).
    pub async fn run_flow(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        payload: Value,
    ) -> Result<flow_run::Model> {
        self.start_published(workspace_id, id, "manual", payload)
            .await
    }

    pub(crate) async fn start_published(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        trigger_type: &str,
        payload: Value,
    ) -> Result<flow_run::Model> {
        let flow = self.get(workspace_id, id).await?;
        let Some(number) = flow.published_version else {
            return Err(Error::field("id", "the flow has no published version"));
        };
        let version = self
            .version(&flow, number)
            .await?
            .ok_or(Error::NotFound("flow version"))?;
        runs::create(self.services, &flow, &version, trigger_type, payload).await
    }

    /// Walks the flow's draft with `payload`, performing nothing (see `dry_run`).
    pub async fn test_flow(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        payload: Value,
        options: dry_run::DryRunOptions,
    ) -> Result<dry_run::Trace> {
        let flow = self.get(workspace_id, id).await?;
        self.test_definition(workspace_id, &flow.draft, payload, options)
            .await
    }

    /// Validates an unsaved definition and walks it with `payload`, performing nothing.
    pub async fn test_definition(
        &self,
        workspace_id: Uuid,
        definition: &Value,
        payload: Value,
        options: dry_run::DryRunOptions,
    ) -> Result<dry_run::Trace> {
        let definition = validate::validate(self.services, workspace_id, definition).await?;
        Ok(dry_run::dry_run(self.services, workspace_id, &definition, payload, options).await)
    }

    pub async fn run(&self, workspace_id: Uuid, id: Uuid) -> Result<flow_run::Model> {
        find_in_workspace!(&self.services.db, flow_run, workspace_id, id, "flow run")
    }

    /// Runs oldest first (pages by id), of one flow or all, in one status or all.
    pub async fn runs(
        &self,
        workspace_id: Uuid,
        flow_id: Option<Uuid>,
        status: Option<RunStatus>,
        page: PageRequest,
    ) -> Result<Page<flow_run::Model>> {
        let mut select =
            flow_run::Entity::find().filter(flow_run::Column::WorkspaceId.eq(workspace_id));
        if let Some(flow_id) = flow_id {
            select = select.filter(flow_run::Column::FlowId.eq(flow_id));
        }
        if let Some(status) = status {
            select = select.filter(flow_run::Column::Status.eq(status));
        }
        paginate(&self.services.db, select, flow_run::Column::Id, page).await
    }

    /// A run's step records, in the order they ran.
    pub async fn steps(&self, run: &flow_run::Model) -> Result<Vec<step_run::Model>> {
        Ok(step_run::Entity::find()
            .filter(step_run::Column::RunId.eq(run.id))
            .order_by_asc(step_run::Column::StartedAt)
            .order_by_asc(step_run::Column::Id)
            .all(&self.services.db)
            .await?)
    }

    /// Stops a run that has not finished; a step running now completes, nothing after it.
    pub async fn cancel(&self, workspace_id: Uuid, id: Uuid) -> Result<flow_run::Model> {
        let run = self.run(workspace_id, id).await?;
        if engine::is_finished(run.status) {
            return Err(Error::field("id", "the run has already finished"));
        }
        let mut model: flow_run::ActiveModel = run.into();
        model.status = Set(RunStatus::Cancelled);
        model.finished_at = Set(Some(Utc::now()));
        model.waiting_for = Set(None);
        model.wake_at = Set(None);
        model.updated_at = Set(Utc::now());
        let run = model.update(&self.services.db).await?;
        runs::publish_update(self.services, &run).await;
        runs::release_next(self.services, &run).await?;
        Ok(run)
    }

    /// Runs a FAILED run again: from the step that failed (keeping what was done before it), or
    /// from the start as a new run with the same trigger.
    pub async fn retry(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        from_failed_step: bool,
    ) -> Result<flow_run::Model> {
        let run = self.run(workspace_id, id).await?;
        if run.status != RunStatus::Failed {
            return Err(Error::field("id", "only a FAILED run can be retried"));
        }
        if !from_failed_step {
            let flow = self.get(workspace_id, run.flow_id).await?;
            let version = self
                .version_by_id(run.flow_version_id)
                .await?
                .ok_or(Error::NotFound("flow version"))?;
            return runs::create(
                self.services,
                &flow,
                &version,
                &run.trigger_type,
                run.trigger_payload,
            )
            .await;
        }
        let mut state: state::RunState =
            serde_json::from_value(run.state.clone()).unwrap_or_default();
        // Attempts of the retry are counted on from the failed ones, so their records stay apart.
        state.attempt += 1;
        state.wake = None;
        let mut model: flow_run::ActiveModel = run.into();
        model.status = Set(RunStatus::Running);
        model.error = Set(None);
        model.finished_at = Set(None);
        model.state = Set(serde_json::to_value(&state).expect("state serializes"));
        model.wake_at = Set(None);
        model.updated_at = Set(Utc::now());
        let run = model.update(&self.services.db).await?;
        runs::announce(self.services, &run).await?;
        Ok(run)
    }
}
