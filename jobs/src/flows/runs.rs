//! Runs and their step records in the database: creating a run (and its job after the commit),
//! saving it, the concurrency-key queue, and what a failure sets off.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::OnConflict,
};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    CustomerAddress,
    enums::{RunStatus, StepStatus},
    flow, flow_run, flow_version, step_run,
};

use super::{FlowJob, state::RunState};
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
    create_in_chain(services, flow, version, trigger_type, trigger, 0).await
}

/// `create`, for a run that is the `hop`th of a chain of runs calling webhooks.
pub async fn create_in_chain(
    services: &Services,
    flow: &flow::Model,
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
            .for_workspace(flow.workspace_id)
            .render(template, &json!({"trigger": trigger}))
            .await
        {
            Ok(key) if !key.trim().is_empty() => Some(key),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(flow_id = %flow.id, %error, "the concurrency key cannot be rendered; the run is not serialized");
                None
            }
        },
        // A contact's runs of one flow go one at a time by default.
        None => trigger["customer_phone"].as_str().map(str::to_owned),
    };
    let now = Utc::now();
    let run = flow_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(flow.workspace_id),
        flow_id: Set(flow.id),
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
    }
    .insert(&services.db)
    .await?;
    announce(services, &run).await?;
    Ok(run)
}

/// Tells subscribers about a run that is (again) ready and gives it to a worker.
pub async fn announce(services: &Services, run: &flow_run::Model) -> Result<()> {
    publish_update(services, run, None).await;
    poke(services, run.id, None).await
}

/// Queues a job for the run now: it does whatever the run's row says is due (`token`: the
/// wake-up it stands for, if any).
pub async fn poke(services: &Services, run_id: Uuid, token: Option<Uuid>) -> Result<()> {
    let job = FlowJob::Run { run_id, token };
    services.jobs.flows.push(job, None).await
}

/// Saves a run's progress for the job holding it (`holder`, its lease); false when the run was
/// cancelled meanwhile or another job holds it now, and nothing is saved.
pub async fn save(services: &Services, run: &flow_run::Model, holder: Uuid) -> Result<bool> {
    let changed = flow_run::Entity::update_many()
        .set(flow_run::ActiveModel {
            status: Set(run.status),
            state: Set(run.state.clone()),
            error: Set(run.error.clone()),
            started_at: Set(run.started_at),
            finished_at: Set(run.finished_at),
            updated_at: Set(run.updated_at),
            waiting_for: Set(run.waiting_for.clone()),
            wake_at: Set(run.wake_at),
            ..Default::default()
        })
        .filter(flow_run::Column::Id.eq(run.id))
        .filter(flow_run::Column::Status.ne(RunStatus::Cancelled))
        .filter(flow_run::Column::LockedBy.eq(holder))
        .exec(&services.db)
        .await?
        .rows_affected;
    if changed == 1 {
        publish_update(services, run, None).await;
    }
    Ok(changed == 1)
}

/// Whether an earlier run with the same concurrency key has not finished: this one waits.
pub async fn blocked_by_earlier(services: &Services, run: &flow_run::Model) -> Result<bool> {
    let Some(key) = &run.concurrency_key else {
        return Ok(false);
    };
    let earlier = flow_run::Entity::find()
        .filter(flow_run::Column::FlowId.eq(run.flow_id))
        .filter(flow_run::Column::ConcurrencyKey.eq(key.as_str()))
        .filter(flow_run::Column::Id.ne(run.id))
        .filter(
            Condition::any()
                .add(flow_run::Column::Status.is_in([RunStatus::Running, RunStatus::Waiting]))
                .add(
                    Condition::all()
                        .add(flow_run::Column::Status.eq(RunStatus::Queued))
                        .add(flow_run::Column::Id.lt(run.id)),
                ),
        )
        .one(&services.db)
        .await?;
    Ok(earlier.is_some())
}

/// A run finished: the next queued run with its key may start.
pub async fn release_next(services: &Services, run: &flow_run::Model) -> Result<()> {
    let Some(key) = &run.concurrency_key else {
        return Ok(());
    };
    let next = flow_run::Entity::find()
        .filter(flow_run::Column::FlowId.eq(run.flow_id))
        .filter(flow_run::Column::ConcurrencyKey.eq(key.as_str()))
        .filter(flow_run::Column::Status.eq(RunStatus::Queued))
        .order_by_asc(flow_run::Column::Id)
        .one(&services.db)
        .await?;
    match next {
        Some(next) => poke(services, next.id, None).await,
        None => Ok(()),
    }
}

/// A run failed: tell subscribers and webhooks, and start the flow's error handler.
pub async fn failed(
    services: &Services,
    run: &flow_run::Model,
    flow: &flow::Model,
    step_id: Option<&str>,
) -> Result<()> {
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

pub async fn publish_update(
    services: &Services,
    run: &flow_run::Model,
    step: Option<&step_run::Model>,
) {
    let update = FlowRunUpdated {
        run_id: run.id,
        flow_id: run.flow_id,
        status: run.status,
        error: run.error.clone(),
        step_id: step.map(|s| s.step_id.clone()),
        step_status: step.map(|s| s.status),
    };
    services
        .events
        .publish(Event::new(
            run.workspace_id,
            EventPayload::FlowRunUpdated(update),
        ))
        .await;
}

/// Records that a step (attempt) started; a record that exists (a job re-run after a crash) is
/// returned as it is.
#[allow(clippy::too_many_arguments)]
pub async fn start_step_run(
    services: &Services,
    run: &flow_run::Model,
    step_id: &str,
    step_type: &str,
    iteration: &str,
    attempt: u32,
    key: &str,
    input: Option<&Value>,
) -> Result<step_run::Model> {
    step_run::Entity::insert(step_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(run.workspace_id),
        run_id: Set(run.id),
        step_id: Set(step_id.to_owned()),
        step_type: Set(step_type.to_owned()),
        iteration: Set(iteration.to_owned()),
        attempt: Set(attempt as i32),
        status: Set(StepStatus::Running),
        input: Set(input.cloned()),
        output: Set(None),
        error: Set(None),
        idempotency_key: Set(key.to_owned()),
        started_at: Set(Utc::now()),
        finished_at: Set(None),
    })
    .on_conflict(
        OnConflict::column(step_run::Column::IdempotencyKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&services.db)
    .await?;
    let record = step_run::Entity::find()
        .filter(step_run::Column::IdempotencyKey.eq(key))
        .one(&services.db)
        .await?
        .ok_or(crate::Error::NotFound("step run"))?;
    publish_update(services, run, Some(&record)).await;
    Ok(record)
}

pub async fn finish_step_run(
    services: &Services,
    run: &flow_run::Model,
    record: step_run::Model,
    status: StepStatus,
    output: Option<&Value>,
    error: Option<&str>,
) -> Result<()> {
    let mut model: step_run::ActiveModel = record.into();
    model.status = Set(status);
    model.output = Set(output.cloned());
    model.error = Set(error.map(str::to_owned));
    model.finished_at = Set(Some(Utc::now()));
    let record = model.update(&services.db).await?;
    publish_update(services, run, Some(&record)).await;
    Ok(())
}
