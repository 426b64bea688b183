//! Runs and their step records in the database: creating a run (and its job after the commit),
//! saving it, the concurrency-key queue, and what a failure sets off.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set,
    sea_query::OnConflict,
};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    CustomerAddress,
    enums::{RunStatus, StepStatus},
    flow, flow_run, flow_version, step_run,
};

use super::{
    FlowJob,
    lease::{Lease, Taken, Which},
    state::RunState,
};
use crate::{
    Services,
    error::Result,
    events::{Event, EventPayload, FlowRunFailed, FlowRunUpdated},
};

/// What a run waiting for a reply from `phone` on `sender` is parked under.
pub fn reply_key(sender_id: Uuid, customer: &CustomerAddress) -> String {
    // One key for every form of a number: a reply from WhatsApp's id finds the run that waits
    // on the number as the business wrote it.
    match customer {
        CustomerAddress::Phone(phone) => format!("reply:{sender_id}:{}", phone.customer_key()),
        CustomerAddress::UserId(user_id) => format!("reply:{sender_id}:{user_id}"),
    }
}

/// Creates a QUEUED run of `version` for `trigger` and enqueues it (after the insert commits).
pub async fn create(
    services: &Services,
    flow: &flow::Model,
    version: &flow_version::Model,
    trigger_type: &str,
    trigger: Value,
) -> Result<flow_run::Model> {
    create_in_chain(
        services,
        (flow.workspace_id, flow.id),
        version,
        trigger_type,
        trigger,
        0,
    )
    .await
}

/// `create`, for a run that is the `hop`th of a chain of runs calling webhooks.
/// `flow`: the workspace's and the flow's ids.
pub async fn create_in_chain(
    services: &Services,
    (workspace_id, flow_id): (Uuid, Uuid),
    version: &flow_version::Model,
    trigger_type: &str,
    trigger: Value,
    hop: u32,
) -> Result<flow_run::Model> {
    // The version was validated when published: its key, if any, is a template string.
    let key_template = version
        .definition
        .get("concurrencyKey")
        .and_then(Value::as_str);
    let concurrency_key = match key_template {
        Some(template) => match services
            .sandbox
            .for_workspace(workspace_id)
            .render(template, &json!({"trigger": trigger}))
            .await
        {
            Ok(key) if !key.trim().is_empty() => Some(key),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%flow_id, %error, "the concurrency key cannot be rendered; the run is not serialized");
                None
            }
        },
        // A contact's runs of one flow go one at a time by default.
        None => trigger["customer_phone"].as_str().map(str::to_owned),
    };
    let now = Utc::now();
    let new_run = flow_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace_id),
        flow_id: Set(flow_id),
        flow_version_id: Set(version.id),
        status: Set(RunStatus::Queued),
        trigger_type: Set(trigger_type.to_owned()),
        trigger_payload: Set(trigger),
        state: Set(serde_json::to_value(RunState {
            hop,
            ..RunState::new()
        })
        .expect("state serializes")),
        concurrency_key: Set(concurrency_key),
        error: Set(None),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        updated_at: Set(now),
        locked_until: Set(None),
        waiting_for: Set(None),
        wake_at: Set(None),
        locked_by: Set(None),
    };
    let (run, waits) = super::lease::insert_run(&services.db, new_run).await?;
    // A run behind an unfinished run of its key gets no job (one would only find it blocked):
    // the end of the run before hands it on.
    if waits {
        publish_update(services, &run).await;
    } else {
        announce(services, &run).await?;
    }
    Ok(run)
}

/// Tells subscribers about a run that is (again) ready and gives it to a worker.
pub async fn announce(services: &Services, run: &flow_run::Model) -> Result<()> {
    publish_update(services, run).await;
    poke(services, run.id, None).await
}

/// Queues a job for the run now: it does whatever the run's row says is due (`token`: the
/// wake-up it stands for, if any).
pub async fn poke(services: &Services, run_id: Uuid, token: Option<Uuid>) -> Result<()> {
    let job = FlowJob::Run { run_id, token };
    services.jobs.flows.push(job, None).await
}

/// A step record written with the run's next save.
#[derive(Debug, Clone)]
pub(crate) enum RecordWrite {
    /// A step that started and ended at once (or failed before it could start), whole.
    Whole(step_run::Model),
    /// The end of a record started by an earlier save: its status, output, error and end.
    Finish(step_run::Model),
}

/// What a save writes besides the run, in the same transaction.
#[derive(Debug, Default)]
pub(crate) struct Save {
    /// The step records since the last save, in the order the steps ran.
    pub records: Vec<RecordWrite>,
    /// The record of a step about to start (kept as it was if a job before wrote it).
    pub start: Option<step_run::Model>,
    /// The job gives the run up: it parked or ended.
    pub release: bool,
}

/// What a save found.
#[derive(Default)]
pub(crate) struct Saved {
    /// The started step's record, as stored.
    pub started: Option<step_run::Model>,
    /// The next queued run of the concurrency key, taken for this job, when this save ended
    /// the run: its lease is taken in the same transaction, so the hand-off costs no commit of
    /// its own and no other job can take it meanwhile.
    pub next: Option<Taken>,
}

/// Saves a run's progress for the job holding it (`holder`, its lease), with `save`'s step
/// records, in one transaction; `None` when the run was cancelled meanwhile or another job
/// holds it now, and nothing is saved. Subscribers hear of each record and of the run after
/// the commit.
pub(crate) async fn save(
    services: &Services,
    run: &flow_run::Model,
    holder: Uuid,
    save: Save,
) -> Result<Option<Saved>> {
    let txn = crate::db::begin_write(&services.db).await?;
    let mut saved = Saved::default();
    write_records(&txn, &save.records).await?;
    let mut changes = flow_run::ActiveModel {
        status: Set(run.status),
        state: Set(run.state.clone()),
        error: Set(run.error.clone()),
        started_at: Set(run.started_at),
        finished_at: Set(run.finished_at),
        updated_at: Set(run.updated_at),
        waiting_for: Set(run.waiting_for.clone()),
        wake_at: Set(run.wake_at),
        ..Default::default()
    };
    if save.release {
        changes.locked_by = Set(None);
        changes.locked_until = Set(None);
    }
    let changed = flow_run::Entity::update_many()
        .set(changes)
        .filter(flow_run::Column::Id.eq(run.id))
        .filter(flow_run::Column::Status.ne(RunStatus::Cancelled))
        .filter(flow_run::Column::LockedBy.eq(holder))
        .exec(&txn)
        .await?
        .rows_affected;
    if changed != 1 {
        txn.rollback().await?;
        return Ok(None);
    }
    if let Some(record) = &save.start {
        saved.started = Some(start_record(&txn, record).await?);
    }
    if let (RunStatus::Succeeded | RunStatus::Failed, Some(key)) =
        (run.status, &run.concurrency_key)
    {
        let next = Which::NextOf {
            flow_id: run.flow_id,
            key,
        };
        saved.next = Lease::take(services, &txn, next).await?;
    }
    txn.commit().await?;
    for record in &save.records {
        let (RecordWrite::Whole(r) | RecordWrite::Finish(r)) = record;
        publish_step(services, run, r).await;
    }
    publish_update(services, run).await;
    if let Some(started) = &saved.started {
        publish_step(services, run, started).await;
    }
    Ok(Some(saved))
}

async fn write_records(txn: &impl ConnectionTrait, records: &[RecordWrite]) -> Result<()> {
    let mut whole = Vec::new();
    for record in records {
        match record {
            RecordWrite::Whole(r) => whole.push(step_run::ActiveModel::from(r.clone()).reset_all()),
            RecordWrite::Finish(r) => {
                step_run::Entity::update_many()
                    .set(step_run::ActiveModel {
                        status: Set(r.status),
                        output: Set(r.output.clone()),
                        error: Set(r.error.clone()),
                        finished_at: Set(r.finished_at),
                        ..Default::default()
                    })
                    .filter(step_run::Column::Id.eq(r.id))
                    .exec(txn)
                    .await?;
            }
        }
    }
    if !whole.is_empty() {
        step_run::Entity::insert_many(whole)
            .on_conflict(keep_saved_record())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// A job re-run after a crash may meet records its predecessor saved under the same key: they
/// stay as they are.
fn keep_saved_record() -> OnConflict {
    OnConflict::column(step_run::Column::IdempotencyKey)
        .do_nothing()
        .to_owned()
}

/// Inserts a started record, or finds the one a job before this one inserted under its key, in
/// one statement: on a conflict the stored record is "updated" to its own key, which leaves it
/// as it was and returns it.
async fn start_record(
    txn: &impl ConnectionTrait,
    record: &step_run::Model,
) -> Result<step_run::Model> {
    let as_stored = OnConflict::column(step_run::Column::IdempotencyKey)
        .update_column(step_run::Column::IdempotencyKey)
        .to_owned();
    Ok(
        step_run::Entity::insert(step_run::ActiveModel::from(record.clone()).reset_all())
            .on_conflict(as_stored)
            .exec_with_returning(txn)
            .await?,
    )
}

/// A run finished: the next queued run with its key may start (for a job that finds the run
/// finished: its worker may have died between the run's end and the hand-off).
pub async fn release_next(services: &Services, run: &flow_run::Model) -> Result<()> {
    let Some(key) = &run.concurrency_key else {
        return Ok(());
    };
    match super::lease::next_queued(&services.db, run.flow_id, key).await? {
        Some(next) => poke(services, next, None).await,
        None => Ok(()),
    }
}

/// A run failed: tell subscribers and webhooks, and start the flow's error handler.
pub async fn failed(
    services: &Services,
    run: &flow_run::Model,
    step_id: Option<&str>,
) -> Result<()> {
    let Some(flow) = flow::Entity::find_by_id(run.flow_id)
        .one(&services.db)
        .await?
    else {
        return Ok(());
    };
    let failure = FlowRunFailed {
        run_id: run.id,
        flow_id: flow.id,
        flow_name: flow.name.clone(),
        step_id: step_id.map(str::to_owned),
        error: run.error.clone().unwrap_or_default(),
        trigger: run.trigger_payload.clone(),
    };
    services
        .emit(Event::new(
            run.workspace_id,
            EventPayload::FlowRunFailed(failure.clone()),
        ))
        .await;
    if let Some(handler) = flow.on_error_flow_id
        && handler != flow.id
    {
        let trigger = serde_json::to_value(&failure).expect("failure serializes");
        if let Err(error) = services
            .flows()
            .start_published(run.workspace_id, handler, "flow_failed", trigger)
            .await
        {
            tracing::warn!(flow_id = %flow.id, %error, "cannot start the flow's error handler");
        }
    }
    Ok(())
}

/// Tells subscribers where the run is.
pub async fn publish_update(services: &Services, run: &flow_run::Model) {
    let update = FlowRunUpdated {
        run_id: run.id,
        flow_id: run.flow_id,
        status: run.status,
        error: run.error.clone(),
        step_id: None,
        step_status: None,
    };
    publish(services, run, update).await;
}

/// Tells subscribers of a step's record. Every step starts and ends while its run is RUNNING,
/// which is the status the update carries even when the record is saved with the run's end.
async fn publish_step(services: &Services, run: &flow_run::Model, step: &step_run::Model) {
    let update = FlowRunUpdated {
        run_id: run.id,
        flow_id: run.flow_id,
        status: RunStatus::Running,
        error: None,
        step_id: Some(step.step_id.clone()),
        step_status: Some(step.status),
    };
    publish(services, run, update).await;
}

async fn publish(services: &Services, run: &flow_run::Model, update: FlowRunUpdated) {
    services
        .events
        .publish(Event::new(
            run.workspace_id,
            EventPayload::FlowRunUpdated(update),
        ))
        .await;
}

/// Where a step record belongs and what it is called: the step, its loop iteration and
/// attempt, and the idempotency key a job re-run after a crash finds it by.
pub(crate) struct RecordOf<'a> {
    pub step_id: &'a str,
    pub step_type: &'a str,
    pub iteration: String,
    pub attempt: u32,
    pub key: String,
}

/// A new record of a step (attempt) of `run`, started now, to be written by `save`.
pub(crate) fn new_record(
    run: &flow_run::Model,
    of: RecordOf<'_>,
    input: Option<&Value>,
) -> step_run::Model {
    step_run::Model {
        id: Uuid::now_v7(),
        workspace_id: run.workspace_id,
        run_id: run.id,
        step_id: of.step_id.to_owned(),
        step_type: of.step_type.to_owned(),
        iteration: of.iteration,
        attempt: of.attempt as i32,
        status: StepStatus::Running,
        input: input.cloned(),
        output: None,
        error: None,
        idempotency_key: of.key,
        started_at: Utc::now(),
        finished_at: None,
    }
}

/// `record` as it ends: `status`, with its output or error, now.
pub(crate) fn ended(
    mut record: step_run::Model,
    status: StepStatus,
    output: Option<&Value>,
    error: Option<&str>,
) -> step_run::Model {
    record.status = status;
    record.output = output.cloned();
    record.error = error.map(str::to_owned);
    record.finished_at = Some(Utc::now());
    record
}
