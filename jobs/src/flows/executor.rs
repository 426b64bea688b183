//! A run's effects while one job holds it (`Executor`): steps performed with their records,
//! waits and retries scheduled, and the run saved where a crash must not lose it. The walk
//! itself is `interpreter`'s; `engine` takes the run and hands it here.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    enums::{RunStatus, StepStatus},
    flow_run, step_run,
};

use super::{
    FlowJob,
    definition::{Definition, Leaf, Step},
    interpreter::Effects,
    lease::{Lease, Taken},
    runs::{self, RecordOf, RecordWrite, Save, Saved},
    state::{RunState, StepIndex, Wake, WakeReason},
    steps::{Deadline, Outcome, Park, StepContext, StepError},
};
use crate::{
    Services,
    crash_points::CrashPoint,
    error::Result,
    sandbox::{TemplateError, Templates},
};

/// Why a job continues a run.
#[derive(Debug, Clone)]
pub enum Resume {
    /// Start or continue; `Some(token)` is a scheduled wake-up (delay, retry, reply timeout).
    Token(Option<Uuid>),
    /// The contact answered a `wait_for_reply` step.
    Reply(Value),
}

/// Stops execution: the run was cancelled while a step ran, or this job lost its lease.
struct Stopped;

/// A run's effects while one job holds it. Steps without side effects (set_variables, branch,
/// loop bookkeeping, stop) change only the state in memory and add their records to `pending`;
/// the state and the records are saved, in one transaction, before a side effect (with the
/// step's started record), after it, when the run parks and when it ends. A job that dies
/// between two saves leaves the run at the last one, and the steps since are run again: they
/// touch nothing outside the run, and a side effect is found again by its key.
pub(super) struct Executor<'a> {
    services: &'a Services,
    /// This job's hold on the run: saves go through only while the row still names it.
    holder: Uuid,
    run: flow_run::Model,
    state: RunState,
    /// Shared, so walking it while the executor changes its state needs no copy.
    definition: Option<Arc<Definition>>,
    /// The record of the step with side effects being performed, started before it.
    current: Option<step_run::Model>,
    /// Step records not saved yet, in the order the steps ran.
    pending: Vec<RecordWrite>,
    /// A side effect happened since the last save: save before the next step.
    unsaved_effect: bool,
    /// The last save gave the lease up (the run parked or ended).
    pub(super) released: bool,
    /// The run ended, and this run of its concurrency key is next.
    pub(super) next: Option<Taken>,
}

impl<'a> Executor<'a> {
    pub(super) fn new(
        services: &'a Services,
        lease: &Lease,
        run: flow_run::Model,
        state: RunState,
        definition: Option<Arc<Definition>>,
    ) -> Self {
        Self {
            services,
            holder: lease.holder,
            run,
            state,
            definition,
            current: None,
            pending: Vec::new(),
            unsaved_effect: false,
            released: false,
            next: None,
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

    /// A new record of `step`'s current iteration and attempt, started now.
    fn new_record(&self, step: &Step, input: Option<&Value>) -> step_run::Model {
        let of = RecordOf {
            step_id: &step.id,
            step_type: step.action.kind(),
            iteration: self.state.iteration(),
            attempt: self.state.attempt,
            key: self.step_key(&step.id),
        };
        runs::new_record(&self.run, of, input)
    }

    /// Applies what is due, whichever job brought it: true when the run goes on, false when it
    /// must be left alone (nothing is due yet).
    pub(super) async fn resume(&mut self, resume: Resume) -> Result<bool> {
        let now = Utc::now();
        let Some(wake) = self.state.wake.clone() else {
            return Ok(match self.run.status {
                RunStatus::Queued => {
                    // Saved with the first save: until then the row reads as queued, and a
                    // run whose worker dies here is started again from the top.
                    self.run.status = RunStatus::Running;
                    self.run.started_at = Some(now);
                    runs::publish_update(self.services, &self.run).await;
                    true
                }
                // Between two steps: its worker died, a reply was taken, or a retry from the
                // failed step was asked for. Any job continues it.
                RunStatus::Running => true,
                _ => false,
            });
        };
        match resume {
            Resume::Reply(reply) if self.run.waiting_for.is_some() => {
                self.state.wake = None;
                self.run.waiting_for = None;
                self.finish_parked(json!({"timed_out": false, "message": reply}))
                    .await?;
                self.run.status = RunStatus::Running;
                // Saved before the steps after it: the reply is in this job only.
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
        Ok(self.save(false, None).await?.is_ok())
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
        if self.save(true, None).await?.is_ok() {
            crash_points.pass(CrashPoint::Parked, self.run.id).await;
        }
        Ok(())
    }

    /// The parked step is over (its time came, or the reply): its record ends with `output`
    /// at the next save, and the run moves on.
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
            let record = runs::ended(record, StepStatus::Succeeded, Some(&output), None);
            self.pending.push(RecordWrite::Finish(record));
        }
        self.state.steps.insert(step.id.clone(), output);
        self.state.step_done();
        Ok(())
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

    /// Saves the run with the pending step records (and `start`, a step's record to start);
    /// `release`: the job gives the run up. `Err(Stopped)` when it was cancelled meanwhile or
    /// another worker took it over (nothing is saved then).
    async fn save(
        &mut self,
        release: bool,
        start: Option<step_run::Model>,
    ) -> Result<Result<Saved, Stopped>> {
        self.run.state = serde_json::to_value(&self.state).expect("run state serializes");
        self.run.wake_at = self.state.wake.as_ref().map(|w| w.at);
        self.run.updated_at = Utc::now();
        let save = Save {
            records: std::mem::take(&mut self.pending),
            start,
            release,
        };
        match runs::save(self.services, &self.run, self.holder, save).await? {
            Some(saved) => {
                self.unsaved_effect = false;
                self.released = release;
                Ok(Ok(saved))
            }
            None => Ok(Err(Stopped)),
        }
    }

    async fn succeed(&mut self) -> Result<()> {
        self.state.frames.clear();
        self.run.status = RunStatus::Succeeded;
        self.run.finished_at = Some(Utc::now());
        if let Ok(saved) = self.save(true, None).await? {
            self.ended(saved).await;
        }
        Ok(())
    }

    /// The run's end is saved: the next run of its concurrency key may start.
    async fn ended(&mut self, saved: Saved) {
        self.services
            .crash_points
            .pass(CrashPoint::Finished, self.run.id)
            .await;
        self.next = saved.next;
    }

    pub(super) async fn fail_run(&mut self, step_id: Option<&str>, error: String) -> Result<()> {
        self.run.status = RunStatus::Failed;
        self.run.error = Some(match step_id {
            Some(id) => format!("step {id}: {error}"),
            None => error,
        });
        self.run.finished_at = Some(Utc::now());
        if let Ok(saved) = self.save(true, None).await? {
            runs::failed(self.services, &self.run, step_id).await?;
            self.ended(saved).await;
        }
        Ok(())
    }
}

/// A run's effects: steps performed with their records, retries and waits scheduled, the run
/// saved where a crash must not lose it.
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

    /// A step with side effects is recorded as started, with the state, before it: a job re-run
    /// after a crash finds the record (and a send its message) by the key of the run, step,
    /// iteration and attempt; so the record must be on disk before the effect leaves (a send
    /// flushes it with its message, `StepType::SENDS_THROUGH_MESSAGING`). A step that waits is
    /// recorded when it parks (its wait counts from there).
    async fn start(&mut self, step: &Step, leaf: &Leaf, input: &Value) -> Result<bool> {
        if !leaf.has_side_effects() || leaf.waits() {
            return Ok(true);
        }
        let record = self.new_record(step, Some(input));
        Ok(match self.save(false, Some(record)).await? {
            Ok(saved) => {
                if !leaf.sends_through_messaging() {
                    self.services.durability.sync().await?;
                }
                self.current = saved.started;
                true
            }
            Err(Stopped) => false,
        })
    }

    async fn perform(
        &mut self,
        step: &Step,
        leaf: &Leaf,
        context: &Value,
        rendered: &Result<Value, TemplateError>,
        _input: &Value,
    ) -> Result<Result<Outcome, StepError>> {
        let cx = StepContext {
            services: self.services,
            workspace_id: self.run.workspace_id,
            context,
            rendered,
            idempotency_key: format!("flow:{}", self.step_key(&step.id)),
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
        let write = match self.current.take() {
            Some(started) => {
                self.unsaved_effect = true;
                RecordWrite::Finish(runs::ended(started, status, output, error))
            }
            None => {
                let record = self.new_record(step, input);
                RecordWrite::Whole(runs::ended(record, status, output, error))
            }
        };
        self.pending.push(write);
        Ok(())
    }

    /// Parks the run at `step` until its deadline (or a reply), and schedules its wake-up.
    async fn park(&mut self, step: &Step, input: Option<&Value>, park: Park) -> Result<()> {
        let record = match self.current.take() {
            Some(started) => started,
            None => {
                let record = self.new_record(step, input);
                match self.save(false, Some(record)).await? {
                    Ok(Saved {
                        started: Some(started),
                        ..
                    }) => started,
                    _ => return Ok(()),
                }
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

    /// Saves only after a side effect; the other steps' state waits for the next save.
    async fn checkpoint(&mut self) -> Result<bool> {
        if !self.unsaved_effect {
            return Ok(true);
        }
        self.saved().await
    }

    async fn succeed(&mut self) -> Result<()> {
        Executor::succeed(self).await
    }

    async fn fail(&mut self, step: &Step, error: String) -> Result<()> {
        self.fail_run(Some(&step.id), error).await
    }
}
