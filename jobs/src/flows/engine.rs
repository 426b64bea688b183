//! The engine: runs a flow run from its saved position until it finishes, fails, or parks (a
//! delay, a wait for a reply, a retry's backoff). One worker at a time holds a run (a lease on
//! its row, renewed while it works and expiring if the worker dies); the state is saved after
//! every step, so whichever worker picks the run up next continues from the last finished step.
//! The walk through the steps is `interpreter`'s; this module is its effects for a run.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    enums::{RunStatus, StepStatus},
    flow, flow_run, flow_version, step_run,
};

use super::{
    FlowJob,
    definition::{self, Definition, Leaf, Step},
    interpreter::{self, Effects},
    lease::Lease,
    runs,
    state::{RunState, StepIndex, Wake, WakeReason},
    steps::{Deadline, Outcome, Park, StepContext, StepError},
};
use crate::{
    Services,
    crash_points::CrashPoint,
    error::Result,
    sandbox::{TemplateError, Templates},
};

/// How soon a job that found its run held by another worker tries again.
const HELD_RETRY: Duration = Duration::from_secs(1);

/// Why a job continues a run.
#[derive(Debug, Clone)]
pub enum Resume {
    /// Start or continue; `Some(token)` is a scheduled wake-up (delay, retry, reply timeout).
    Token(Option<Uuid>),
    /// The contact answered a `wait_for_reply` step.
    Reply(Value),
}

pub fn is_finished(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
    )
}

/// The flow job: continues the run if no other worker holds it.
///
/// Every job is a poke: whatever it carries, it does what the run's row says is due. So a job
/// delivered twice, late, or after its worker died does no harm, and one that finds nothing
/// due leaves the run to the wake-up that is due later.
pub async fn execute(services: &Services, run_id: Uuid, resume: Resume) -> Result<()> {
    let db = &services.db;
    let Some(run) = flow_run::Entity::find_by_id(run_id).one(db).await? else {
        return Ok(());
    };
    if is_finished(run.status) {
        // Mostly a stale wake-up. It may also be the job of a worker that died after saving the
        // run's end and before releasing the next run of its concurrency key: release it again
        // (a second release only pokes a run that checks for itself whether it may start).
        return runs::release_next(services, &run).await;
    }
    let Some(lease) = Lease::take(services, run_id).await? else {
        let job = match resume {
            Resume::Token(token) => FlowJob::Run { run_id, token },
            Resume::Reply(reply) => FlowJob::Reply { run_id, reply },
        };
        services.jobs.flows.push(job, Some(HELD_RETRY)).await?;
        services
            .crash_points
            .pass(CrashPoint::HeldRetryQueued, run_id)
            .await;
        return Ok(());
    };
    let work = run_locked(services, &lease, resume);
    tokio::pin!(work);
    let mut renew = tokio::time::interval(services.runs.lease / 3);
    renew.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            _ = renew.tick() => {
                if let Err(error) = lease.extend(services).await {
                    tracing::warn!(%run_id, %error, "cannot renew the hold on a flow run");
                }
            }
        }
    };
    let released = lease.release(services).await;
    outcome?;
    released
}

async fn run_locked(services: &Services, lease: &Lease, resume: Resume) -> Result<()> {
    let db = &services.db;
    // Re-read under the lease: the row may have moved since the job looked.
    let Some(run) = flow_run::Entity::find_by_id(lease.run_id).one(db).await? else {
        return Ok(());
    };
    if is_finished(run.status) {
        return Ok(());
    }
    let version = flow_version::Entity::find_by_id(run.flow_version_id)
        .one(db)
        .await?;
    let flow = flow::Entity::find_by_id(run.flow_id).one(db).await?;
    let (Some(version), Some(flow)) = (version, flow) else {
        return Ok(());
    };
    let state: RunState =
        serde_json::from_value(run.state.clone()).unwrap_or_else(|_| RunState::new());
    let definition = match definition::parse(&version.definition) {
        Ok(definition) => definition,
        Err(_) => {
            let mut executor = Executor::new(services, lease, run, flow, state, None);
            return executor
                .fail_run(None, "the flow version's definition cannot be read".into())
                .await;
        }
    };
    let definition = Arc::new(definition);
    let mut executor = Executor::new(services, lease, run, flow, state, Some(definition.clone()));
    match executor.resume(resume).await? {
        true => interpreter::advance(&mut executor, &definition).await,
        false => Ok(()),
    }
}

/// Stops execution: the run was cancelled while a step ran, or this job lost its lease.
struct Stopped;

struct Executor<'a> {
    services: &'a Services,
    /// This job's hold on the run: saves go through only while the row still names it.
    holder: Uuid,
    run: flow_run::Model,
    flow: flow::Model,
    state: RunState,
    /// Shared, so walking it while the executor changes its state needs no copy.
    definition: Option<Arc<Definition>>,
    /// The record of the step with side effects being performed, started before it.
    current: Option<step_run::Model>,
}

impl<'a> Executor<'a> {
    fn new(
        services: &'a Services,
        lease: &Lease,
        run: flow_run::Model,
        flow: flow::Model,
        state: RunState,
        definition: Option<Arc<Definition>>,
    ) -> Self {
        Self {
            services,
            holder: lease.holder,
            run,
            flow,
            state,
            definition,
            current: None,
        }
    }

    fn step_key(&self, step_id: &str) -> String {
        format!(
            "{}:{}:{}:{}",
            self.run.id,
            step_id,
            self.state.iteration(),
            self.state.attempt
        )
    }

    /// Applies what is due, whichever job brought it: true when the run goes on, false when it
    /// must be left alone (nothing is due yet, or an earlier run of its key has not finished).
    async fn resume(&mut self, resume: Resume) -> Result<bool> {
        let now = Utc::now();
        let Some(wake) = self.state.wake.clone() else {
            return match self.run.status {
                RunStatus::Queued => {
                    if runs::blocked_by_earlier(self.services, &self.run).await? {
                        return Ok(false);
                    }
                    self.run.status = RunStatus::Running;
                    self.run.started_at = Some(now);
                    self.saved().await
                }
                // Between two steps: its worker died, a reply was taken, or a retry from the
                // failed step was asked for. Any job continues it.
                RunStatus::Running => Ok(true),
                _ => Ok(false),
            };
        };
        match resume {
            Resume::Reply(reply) if self.run.waiting_for.is_some() => {
                self.state.wake = None;
                self.run.waiting_for = None;
                self.finish_parked(json!({"timed_out": false, "message": reply}))
                    .await?;
                self.run.status = RunStatus::Running;
                let saved = self.saved().await?;
                self.services
                    .crash_points
                    .pass(CrashPoint::ReplyTaken, self.run.id)
                    .await;
                Ok(saved)
            }
            // Due: the first job to come performs the wake-up, be it the one scheduled for it,
            // a duplicate, or the reconciler's.
            _ if wake.at <= now => {
                self.state.wake = None;
                match wake.reason {
                    WakeReason::Delay => self.finish_parked(json!({})).await?,
                    WakeReason::ReplyTimeout => {
                        self.run.waiting_for = None;
                        self.finish_parked(json!({"timed_out": true, "message": null}))
                            .await?
                    }
                    WakeReason::Retry => {}
                }
                self.run.status = RunStatus::Running;
                self.saved().await
            }
            // The scheduled wake-up came early (the queue counts whole seconds): it goes back
            // for its time, so a delay never ends early and stays the run's one wake-up.
            Resume::Token(Some(token)) if token == wake.token => {
                let wait = (wake.at - now).to_std().unwrap_or_default();
                self.schedule(Some(token), wait).await?;
                self.services
                    .crash_points
                    .pass(CrashPoint::WakeRescheduled, self.run.id)
                    .await;
                Ok(false)
            }
            // Not due, and not the wake-up: that one is still in the queue.
            _ => Ok(false),
        }
    }

    /// Saves the run after a change of state; false when it was cancelled or taken meanwhile.
    async fn saved(&mut self) -> Result<bool> {
        Ok(self.checkpoint().await?.is_ok())
    }

    /// Schedules the run's wake-up at `at`, then saves it as parked. In that order: a crash
    /// between the two leaves a wake-up that finds the run still at its step and continues it,
    /// where the other order would leave a parked run that nothing wakes.
    async fn park_until(&mut self, at: chrono::DateTime<Utc>, reason: WakeReason) -> Result<()> {
        let token = Uuid::now_v7();
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        self.schedule(Some(token), wait).await?;
        let crash_points = &self.services.crash_points;
        crash_points.pass(CrashPoint::WakeQueued, self.run.id).await;
        self.state.wake = Some(Wake { token, at, reason });
        if self.checkpoint().await?.is_ok() {
            crash_points.pass(CrashPoint::Parked, self.run.id).await;
        }
        Ok(())
    }

    /// The parked step is over (its time came, or the reply): record its output, move on.
    async fn finish_parked(&mut self, output: Value) -> Result<()> {
        let Some(definition) = self.definition.clone() else {
            return Ok(());
        };
        let index = StepIndex::new(&definition);
        let Some(frame) = self.state.frames.last() else {
            return Ok(());
        };
        let Some(step) = index.steps(&frame.block).get(frame.index) else {
            return Ok(());
        };
        let key = self.step_key(&step.id);
        if let Some(record) = step_run::Entity::find()
            .filter(step_run::Column::IdempotencyKey.eq(&key))
            .one(&self.services.db)
            .await?
        {
            runs::finish_step_run(
                self.services,
                &self.run,
                record,
                StepStatus::Succeeded,
                Some(&output),
                None,
            )
            .await?;
        }
        self.state.steps.insert(step.id.clone(), output);
        self.state.step_done();
        Ok(())
    }

    async fn start_record(
        &self,
        step: &Step,
        key: &str,
        input: Option<&Value>,
    ) -> Result<step_run::Model> {
        runs::start_step_run(
            self.services,
            &self.run,
            &step.id,
            step.action.kind(),
            &self.state.iteration(),
            self.state.attempt,
            key,
            input,
        )
        .await
    }

    /// A step that starts and ends at once (branch, loop, set_variables, stop), or fails before
    /// it could start (a bad expression).
    async fn record(
        &self,
        step: &Step,
        status: StepStatus,
        input: Option<&Value>,
        output: Option<&Value>,
        error: Option<&str>,
    ) -> Result<()> {
        let key = self.step_key(&step.id);
        let started = self.start_record(step, &key, input).await?;
        runs::finish_step_run(self.services, &self.run, started, status, output, error).await
    }

    async fn schedule(&self, token: Option<Uuid>, wait: Duration) -> Result<()> {
        let job = FlowJob::Run {
            run_id: self.run.id,
            token,
        };
        let delay =
            (!wait.is_zero()).then(|| Duration::from_secs(wait.as_millis().div_ceil(1000) as u64));
        self.services.jobs.flows.push(job, delay).await
    }

    /// Saves the run; `Err(Stopped)` when it was cancelled meanwhile or another worker took
    /// it over (nothing is saved then).
    async fn checkpoint(&mut self) -> Result<Result<(), Stopped>> {
        self.run.state = serde_json::to_value(&self.state).expect("run state serializes");
        self.run.wake_at = self.state.wake.as_ref().map(|w| w.at);
        self.run.updated_at = Utc::now();
        if runs::save(self.services, &self.run, self.holder).await? {
            Ok(Ok(()))
        } else {
            Ok(Err(Stopped))
        }
    }

    async fn succeed(&mut self) -> Result<()> {
        self.state.frames.clear();
        self.run.status = RunStatus::Succeeded;
        self.run.finished_at = Some(Utc::now());
        if self.checkpoint().await?.is_ok() {
            self.released().await?;
        }
        Ok(())
    }

    /// The run's end is saved: the next run of its concurrency key may start.
    async fn released(&self) -> Result<()> {
        self.services
            .crash_points
            .pass(CrashPoint::Finished, self.run.id)
            .await;
        runs::release_next(self.services, &self.run).await
    }

    async fn fail_run(&mut self, step_id: Option<&str>, error: String) -> Result<()> {
        self.run.status = RunStatus::Failed;
        self.run.error = Some(match step_id {
            Some(id) => format!("step {id}: {error}"),
            None => error,
        });
        self.run.finished_at = Some(Utc::now());
        if self.checkpoint().await?.is_ok() {
            runs::failed(self.services, &self.run, &self.flow, step_id).await?;
            self.released().await?;
        }
        Ok(())
    }
}

/// A run's effects: steps performed with their records, retries and waits scheduled, the run
/// saved after every step.
impl Effects for Executor<'_> {
    fn state(&self) -> &RunState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut RunState {
        &mut self.state
    }

    fn templates(&self) -> Templates<'_> {
        self.services.sandbox.for_workspace(self.run.workspace_id)
    }

    fn context(&self) -> Value {
        self.state
            .context(&self.run.trigger_payload, self.run.id, self.run.flow_id)
    }

    /// A step with side effects is recorded as started first: a job re-run after a crash finds
    /// the record (and a send its message) by the key of the run, step, iteration and attempt.
    /// A step that waits is recorded when it parks (its wait counts from there).
    async fn perform(
        &mut self,
        step: &Step,
        leaf: &Leaf,
        context: &Value,
        rendered: &Result<Value, TemplateError>,
        input: &Value,
    ) -> Result<Result<Outcome, StepError>> {
        let key = self.step_key(&step.id);
        if leaf.has_side_effects() && !leaf.waits() {
            self.current = Some(self.start_record(step, &key, Some(input)).await?);
        }
        let cx = StepContext {
            services: self.services,
            workspace_id: self.run.workspace_id,
            context,
            rendered,
            idempotency_key: format!("flow:{key}"),
            hop: self.state.hop,
        };
        Ok(leaf.run(&cx).await)
    }

    async fn finish(
        &mut self,
        step: &Step,
        input: Option<&Value>,
        result: Result<&Value, &StepError>,
    ) -> Result<()> {
        let (status, output, error) = match result {
            Ok(output) => (StepStatus::Succeeded, Some(output), None),
            Err(error) => (StepStatus::Failed, None, Some(error.message.as_str())),
        };
        match self.current.take() {
            Some(started) => {
                runs::finish_step_run(self.services, &self.run, started, status, output, error)
                    .await
            }
            None => self.record(step, status, input, output, error).await,
        }
    }

    /// Parks the run at `step` until its deadline (or a reply), and schedules its wake-up.
    async fn park(&mut self, step: &Step, input: Option<&Value>, park: Park) -> Result<()> {
        let record = match self.current.take() {
            Some(started) => started,
            None => {
                let key = self.step_key(&step.id);
                self.start_record(step, &key, input).await?
            }
        };
        // Counted from the step's record, which a job re-run after a crash finds as it was: the
        // wait is not restarted by the crash.
        let at = match park.until {
            Deadline::After(seconds) => {
                record.started_at + chrono::Duration::seconds(seconds as i64)
            }
            Deadline::At(at) => at,
        };
        self.run.status = RunStatus::Waiting;
        self.run.waiting_for = park.waiting_for;
        self.park_until(at, park.reason).await
    }

    /// Another attempt after the step's backoff (or the provider's wait, if longer), while
    /// attempts are left and the error may pass.
    async fn retry(&mut self, step: &Step, error: &StepError) -> Result<bool> {
        if !(error.retryable && self.state.attempt < step.retry.max_attempts) {
            return Ok(false);
        }
        self.state.attempt += 1;
        let wait = Duration::from_secs(step.retry.backoff_seconds)
            .max(error.retry_after.unwrap_or_default());
        self.park_until(Utc::now() + wait, WakeReason::Retry)
            .await?;
        Ok(true)
    }

    async fn checkpoint(&mut self) -> Result<bool> {
        Ok(Executor::checkpoint(self).await?.is_ok())
    }

    async fn succeed(&mut self) -> Result<()> {
        Executor::succeed(self).await
    }

    async fn fail(&mut self, step: &Step, error: String) -> Result<()> {
        self.fail_run(Some(&step.id), error).await
    }
}
