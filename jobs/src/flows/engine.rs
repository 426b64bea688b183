//! The engine: runs a flow run from its saved position until it finishes, fails, or parks (a
//! delay, a wait for a reply, a retry's backoff). One worker at a time holds a run (a lease on
//! its row, renewed while it works and expiring if the worker dies); the state is saved after
//! every step, so whichever worker picks the run up next continues from the last finished step.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use uuid::Uuid;
use waflow_entities::{
    CustomerAddress,
    enums::{RunStatus, StepStatus},
    flow, flow_run, flow_version, step_run,
};

use super::{
    FlowJob,
    actions::{self, StepContext, StepError},
    definition::{self, Action, Definition, Leaf, Step},
    limits, runs,
    state::{Block, Frame, RunState, StepIndex, Wake, WakeReason},
};
use crate::{
    Services, content::template_parameters::TemplateParameters, crash_points::CrashPoint,
    error::Result,
};

/// How soon a job that found its run held by another worker tries again.
const HELD_RETRY: Duration = Duration::from_secs(1);
/// Default timeout of an http_request step.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

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

/// A job's hold on a run: the row's `locked_by` names this job until `locked_until`. Renewal,
/// release and every save check the name, so a worker that stalled past its lease and lost the
/// run to another can no longer write to it.
pub(crate) struct Lease {
    run_id: Uuid,
    pub(crate) holder: Uuid,
}

impl Lease {
    async fn take(services: &Services, run_id: Uuid) -> Result<Option<Lease>> {
        let now = Utc::now();
        let holder = Uuid::now_v7();
        let taken = flow_run::Entity::update_many()
            .col_expr(
                flow_run::Column::LockedUntil,
                Expr::value(now + services.runs.lease),
            )
            .col_expr(flow_run::Column::LockedBy, Expr::value(holder))
            .filter(flow_run::Column::Id.eq(run_id))
            .filter(
                Condition::any()
                    .add(flow_run::Column::LockedUntil.is_null())
                    .add(flow_run::Column::LockedUntil.lt(now)),
            )
            .exec(&services.db)
            .await?
            .rows_affected;
        Ok((taken == 1).then_some(Lease { run_id, holder }))
    }

    async fn extend(&self, services: &Services) -> Result<()> {
        flow_run::Entity::update_many()
            .col_expr(
                flow_run::Column::LockedUntil,
                Expr::value(Utc::now() + services.runs.lease),
            )
            .filter(flow_run::Column::Id.eq(self.run_id))
            .filter(flow_run::Column::LockedBy.eq(self.holder))
            .exec(&services.db)
            .await?;
        Ok(())
    }

    async fn release(&self, services: &Services) -> Result<()> {
        flow_run::Entity::update_many()
            .col_expr(
                flow_run::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(
                flow_run::Column::LockedBy,
                Expr::value(Option::<Uuid>::None),
            )
            .filter(flow_run::Column::Id.eq(self.run_id))
            .filter(flow_run::Column::LockedBy.eq(self.holder))
            .exec(&services.db)
            .await?;
        Ok(())
    }
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
    let mut executor = Executor::new(services, lease, run, flow, state, Some(definition));
    match executor.resume(resume).await? {
        true => executor.advance().await,
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
}

impl<'a> Executor<'a> {
    fn new(
        services: &'a Services,
        lease: &Lease,
        run: flow_run::Model,
        flow: flow::Model,
        state: RunState,
        definition: Option<Definition>,
    ) -> Self {
        Self {
            services,
            holder: lease.holder,
            run,
            flow,
            state,
            definition: definition.map(Arc::new),
        }
    }

    fn templates(&self) -> crate::sandbox::Templates<'a> {
        self.services.sandbox.for_workspace(self.run.workspace_id)
    }

    fn context(&self) -> Value {
        self.state
            .context(&self.run.trigger_payload, self.run.id, self.run.flow_id)
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

    /// Runs steps until the run finishes or parks.
    async fn advance(&mut self) -> Result<()> {
        let Some(definition) = self.definition.clone() else {
            return Ok(());
        };
        let index = StepIndex::new(&definition);
        loop {
            let Some(frame) = self.state.frames.last().cloned() else {
                return self.succeed().await;
            };
            let steps = index.steps(&frame.block);
            let Some(step) = steps.get(frame.index) else {
                self.leave_block(frame);
                continue;
            };
            let next = match &step.action {
                Action::Branch { branches, .. } => self.branch(step, branches).await?,
                Action::Loop { items, .. } => self.start_loop(step, items).await?,
                Action::Leaf(leaf) => self.leaf(step, leaf).await?,
            };
            match next {
                Next::Continue => {
                    if self.checkpoint().await?.is_err() {
                        return Ok(());
                    }
                }
                Next::Stop => return Ok(()),
            }
        }
    }

    /// A block's last step is done: the next item of a loop, or the step after the block.
    fn leave_block(&mut self, frame: Frame) {
        self.state.frames.pop();
        if let Block::Loop { step, items, item } = frame.block
            && item + 1 < items.len()
        {
            self.state.frames.push(Frame {
                block: Block::Loop {
                    step,
                    items,
                    item: item + 1,
                },
                index: 0,
            });
            return;
        }
        self.step_done();
    }

    /// The current step is done: move to the next one, first attempt.
    fn step_done(&mut self) {
        if let Some(parent) = self.state.frames.last_mut() {
            parent.index += 1;
        }
        self.state.attempt = 1;
    }

    async fn branch(&mut self, step: &Step, branches: &[definition::Branch]) -> Result<Next> {
        let context = self.context();
        let mut chosen = None;
        for (i, branch) in branches.iter().enumerate() {
            match self.templates().is_true(&branch.when, &context).await {
                Ok(true) => {
                    chosen = Some(i);
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    let error = StepError::template(&format!("branches[{i}].when"), e);
                    return self.step_failed(step, None, error).await;
                }
            }
        }
        let output = json!({"branch": chosen.map_or(json!("else"), |i| json!(i))});
        self.done_at_once(step, None, output).await?;
        self.state.frames.push(Frame {
            block: Block::Branch {
                step: step.id.clone(),
                branch: chosen,
            },
            index: 0,
        });
        Ok(Next::Continue)
    }

    async fn start_loop(&mut self, step: &Step, items: &str) -> Result<Next> {
        let list = match self.templates().eval(items, &self.context()).await {
            Ok(Value::Array(list)) => list,
            Ok(other) => {
                let error =
                    StepError::permanent(format!("items: {items:?} gives {other}, not a list"));
                return self.step_failed(step, None, error).await;
            }
            Err(e) => {
                let error = StepError::template("items", e);
                return self.step_failed(step, None, error).await;
            }
        };
        if let Err(e) = limits::loop_items(&list, &self.state) {
            return self.step_failed(step, None, StepError::permanent(e)).await;
        }
        let output = json!({"count": list.len()});
        self.done_at_once(step, None, output).await?;
        if list.is_empty() {
            self.step_done();
        } else {
            self.state.frames.push(Frame {
                block: Block::Loop {
                    step: step.id.clone(),
                    items: list,
                    item: 0,
                },
                index: 0,
            });
        }
        Ok(Next::Continue)
    }

    async fn leaf(&mut self, step: &Step, leaf: &Leaf) -> Result<Next> {
        let context = self.context();
        let raw = serde_json::to_value(leaf).expect("a step serializes");
        // The step's record shows its input rendered; a template that cannot be rendered shows
        // as written, and fails the step where it is used, with its field named.
        let rendered = self.templates().render_value(&raw, &context).await;
        let input = Some(rendered.clone().unwrap_or(raw));
        match leaf {
            Leaf::Delay { seconds, until } => {
                let until = match (seconds, until) {
                    (Some(s), _) => Deadline::After(*s),
                    (None, Some(until)) => {
                        let at = match self.templates().render(until, &context).await {
                            Ok(t) => chrono::DateTime::parse_from_rfc3339(t.trim())
                                .map(|t| Deadline::At(t.with_timezone(&Utc)))
                                .map_err(|_| {
                                    StepError::permanent(format!(
                                        "until: {t:?} is not an RFC 3339 time"
                                    ))
                                }),
                            Err(e) => Err(StepError::template("until", e)),
                        };
                        match at {
                            Ok(at) => at,
                            Err(e) => return self.step_failed(step, input, e).await,
                        }
                    }
                    (None, None) => Deadline::After(0),
                };
                self.park(step, input, until, WakeReason::Delay, None).await
            }
            Leaf::WaitForReply {
                timeout_seconds,
                sender_id,
                phone,
            } => {
                let trigger = &self.run.trigger_payload;
                let sender = sender_id.or_else(|| {
                    trigger["sender_id"]
                        .as_str()
                        .and_then(|s| Uuid::parse_str(s).ok())
                });
                let phone = match phone {
                    Some(p) => self.templates().render(p, &context).await.ok(),
                    None => trigger["customer_phone"]
                        .as_str()
                        .or(trigger["customer_user_id"].as_str())
                        .map(str::to_owned),
                };
                let (Some(sender), Some(customer)) = (
                    sender,
                    phone.and_then(|p| CustomerAddress::parse_known(&p).ok()),
                ) else {
                    let error = StepError::permanent(
                        "wait_for_reply needs a sender and a contact's phone: give senderId and phone, or use a WhatsApp trigger",
                    );
                    return self.step_failed(step, input, error).await;
                };
                let waiting_for = runs::reply_key(sender, &customer);
                let until = Deadline::After(*timeout_seconds);
                self.park(
                    step,
                    input,
                    until,
                    WakeReason::ReplyTimeout,
                    Some(waiting_for),
                )
                .await
            }
            Leaf::Stop {} => {
                self.done_at_once(step, input.as_ref(), json!({"stopped": true}))
                    .await?;
                self.succeed().await?;
                Ok(Next::Stop)
            }
            // The values were rendered with the step's input.
            Leaf::SetVariables { .. } => match rendered.map(|mut i| i["values"].take()) {
                Ok(Value::Object(values)) => {
                    let values = Value::Object(values);
                    if let Err(e) = limits::step_output(&values, &self.state, true) {
                        return self.step_failed(step, input, StepError::permanent(e)).await;
                    }
                    let Value::Object(values) = values else {
                        unreachable!("an object")
                    };
                    self.state.vars.extend(values.clone());
                    self.done_at_once(step, input.as_ref(), Value::Object(values))
                        .await?;
                    self.step_done();
                    Ok(Next::Continue)
                }
                Ok(_) => unreachable!("an object renders to an object"),
                Err(e) => {
                    let error = StepError::template("values", e);
                    self.step_failed(step, input, error).await
                }
            },
            action => self.act(step, action, input, &context).await,
        }
    }

    /// A step with side effects, attempt by attempt.
    async fn act(
        &mut self,
        step: &Step,
        leaf: &Leaf,
        input: Option<Value>,
        context: &Value,
    ) -> Result<Next> {
        let key = self.step_key(&step.id);
        let step_run = self.start_record(step, &key, input.as_ref()).await?;
        let cx = StepContext {
            services: self.services,
            workspace_id: self.run.workspace_id,
            context,
            idempotency_key: format!("flow:{key}"),
            hop: self.state.hop,
        };
        let result = match leaf {
            Leaf::SendTemplate {
                sender_id,
                template,
                language,
                to,
                variables,
                recipient_name,
                header,
                buttons,
            } => {
                let parameters = TemplateParameters {
                    header: header.clone(),
                    buttons: buttons.clone(),
                };
                actions::send_template(
                    &cx,
                    actions::TemplateStep {
                        sender_id: *sender_id,
                        template,
                        language,
                        to,
                        variables,
                        recipient_name: recipient_name.as_ref(),
                    },
                    parameters,
                )
                .await
            }
            Leaf::SendText {
                sender_id,
                to,
                text,
            } => actions::send_text(&cx, *sender_id, to, text).await,
            Leaf::SendMessage {
                sender_id,
                to,
                content,
                reply_to,
            } => actions::send_message(&cx, *sender_id, to, content, reply_to.as_deref()).await,
            Leaf::GenerateAiReply {
                assistant_id,
                customer_identifier,
                message,
                variables,
            } => {
                actions::generate_ai_reply(
                    &cx,
                    *assistant_id,
                    customer_identifier,
                    message,
                    variables,
                )
                .await
            }
            Leaf::HttpRequest {
                method,
                url,
                headers,
                body,
                timeout_seconds,
            } => {
                let timeout = timeout_seconds.map_or(HTTP_TIMEOUT, Duration::from_secs);
                actions::http_request(&cx, method, url, headers, body.as_ref(), timeout).await
            }
            Leaf::EndConversation { conversation_id } => {
                let id = conversation_id
                    .clone()
                    .unwrap_or_else(|| "{{ trigger.conversation_id }}".into());
                actions::end_conversation(&cx, &id).await
            }
            Leaf::Delay { .. }
            | Leaf::WaitForReply { .. }
            | Leaf::Stop {}
            | Leaf::SetVariables { .. } => {
                unreachable!("handled by the engine")
            }
        };
        // An output the run cannot hold fails the step like any error (it was performed: its
        // record says so, and a retry finds the message by its key).
        let result = result.and_then(|output| {
            limits::step_output(&output, &self.state, false)
                .map(|()| output)
                .map_err(StepError::permanent)
        });
        match result {
            Ok(output) => {
                runs::finish_step_run(
                    self.services,
                    &self.run,
                    step_run,
                    StepStatus::Succeeded,
                    Some(&output),
                    None,
                )
                .await?;
                self.state.steps.insert(step.id.clone(), output);
                self.step_done();
                Ok(Next::Continue)
            }
            Err(error) => {
                runs::finish_step_run(
                    self.services,
                    &self.run,
                    step_run,
                    StepStatus::Failed,
                    None,
                    Some(&error.message),
                )
                .await?;
                self.after_failure(step, error).await
            }
        }
    }

    /// A step failed (its record written): retry it later, continue past it, or fail the run.
    async fn after_failure(&mut self, step: &Step, error: StepError) -> Result<Next> {
        if error.retryable && self.state.attempt < step.retry.max_attempts {
            self.state.attempt += 1;
            let wait = Duration::from_secs(step.retry.backoff_seconds)
                .max(error.retry_after.unwrap_or_default());
            self.park_until(Utc::now() + wait, WakeReason::Retry)
                .await?;
            return Ok(Next::Stop);
        }
        if step.on_error == definition::OnError::Continue {
            self.state
                .steps
                .insert(step.id.clone(), json!({"error": error.message}));
            self.step_done();
            return Ok(Next::Continue);
        }
        self.fail_run(Some(&step.id), error.message).await?;
        Ok(Next::Stop)
    }

    /// A step that failed before it could start (a bad expression): recorded, then handled.
    async fn step_failed(
        &mut self,
        step: &Step,
        input: Option<Value>,
        error: StepError,
    ) -> Result<Next> {
        self.record(
            step,
            StepStatus::Failed,
            input.as_ref(),
            None,
            Some(&error.message),
        )
        .await?;
        self.after_failure(step, error).await
    }

    /// Parks the run at `step` until its deadline (or a reply), and schedules its wake-up.
    async fn park(
        &mut self,
        step: &Step,
        input: Option<Value>,
        until: Deadline,
        reason: WakeReason,
        waiting_for: Option<String>,
    ) -> Result<Next> {
        let key = self.step_key(&step.id);
        let record = self.start_record(step, &key, input.as_ref()).await?;
        // Counted from the step's record, which a job re-run after a crash finds as it was: the
        // wait is not restarted by the crash.
        let at = match until {
            Deadline::After(seconds) => {
                record.started_at + chrono::Duration::seconds(seconds as i64)
            }
            Deadline::At(at) => at,
        };
        self.run.status = RunStatus::Waiting;
        self.run.waiting_for = waiting_for;
        self.park_until(at, reason).await?;
        Ok(Next::Stop)
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
        self.step_done();
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

    /// A step that succeeded as it started (branch, loop, set_variables, stop): its record and
    /// its output.
    async fn done_at_once(
        &mut self,
        step: &Step,
        input: Option<&Value>,
        output: Value,
    ) -> Result<()> {
        self.record(step, StepStatus::Succeeded, input, Some(&output), None)
            .await?;
        self.state.steps.insert(step.id.clone(), output);
        Ok(())
    }

    /// A step that starts and ends at once (branch, loop, set_variables, stop).
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

enum Next {
    Continue,
    Stop,
}

/// When a parked step's wait ends.
enum Deadline {
    /// This many seconds after the step started.
    After(u64),
    At(chrono::DateTime<Utc>),
}
