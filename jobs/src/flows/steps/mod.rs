//! The step types that do one thing (a send, a request, a wait…), one module each, behind one
//! trait, `StepType`: a step's checks, what it does in a run, and what a dry run answers
//! instead sit side by side in its module. Branches and loops are not here: they hold steps,
//! and the interpreter (`flows::interpreter`) walks them.
//!
//! Adding a step type: a module with its struct and `StepType` impl, a variant of
//! `Leaf`, and an arm in `dispatch!`.

mod ai_reply;
mod delay;
mod end_conversation;
mod http_request;
mod send_message;
mod send_template;
mod send_text;
mod set_variables;
mod stop;
mod wait_for_reply;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;
use waflow_entities::{enums::MessageStatus, message};

pub use ai_reply::GenerateAiReply;
pub use delay::Delay;
pub use end_conversation::EndConversation;
pub use http_request::{Call, HttpRequest, exchange};
pub use send_message::SendMessage;
pub use send_template::{SendTemplate, TemplateVariables};
pub use send_text::SendText;
pub use set_variables::SetVariables;
pub use stop::Stop;
pub use wait_for_reply::WaitForReply;

use super::{definition::Leaf, state::WakeReason, validate::Checks};
use crate::{
    Error, Services,
    sandbox::{TemplateError, Templates},
};

/// One type of step: what `validate` checks of it, what it does in a run, what a dry run
/// answers for it.
pub(crate) trait StepType {
    /// The `type` written in the definition.
    const TYPE: &'static str;
    /// Whether running it acts on the world (a message, a model call, a request, a
    /// conversation's end) or waits on it: what a dry run skips, and what a caller's
    /// `stepOutputs` may stand in for.
    const SIDE_EFFECTS: bool = true;
    /// Whether the run may wait at it (`Outcome::Park`); a run records such a step when it
    /// parks, where it records other steps with side effects before performing them.
    const WAITS: bool = false;
    /// Whether its effect is a message sent through `messaging`, which flushes every commit
    /// before the provider call (`messaging::deliver`): the run's record of the step, committed
    /// before it, is on disk by then without a flush of its own (one fsync per send on SQLite,
    /// not two).
    const SENDS_THROUGH_MESSAGING: bool = false;

    /// Adds the step's problems, the templates it holds and what it names (senders, templates,
    /// assistants) to `checks`; `path` is the step's place, like `steps[2]`.
    fn validate(&self, path: &str, checks: &mut Checks<'_>);

    /// Does the step for real.
    async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError>;

    /// What a dry run answers instead, from the step's input rendered whole: a placeholder of
    /// the real output's shape, marked `dry_run`.
    async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError>;
}

/// Calls `$body` with `$step` bound to the step type inside a [`Leaf`]: the one place that
/// lists every step type.
macro_rules! dispatch {
    ($leaf:expr, $step:ident => $body:expr) => {
        match $leaf {
            Leaf::SendTemplate($step) => $body,
            Leaf::SendText($step) => $body,
            Leaf::SendMessage($step) => $body,
            Leaf::GenerateAiReply($step) => $body,
            Leaf::Delay($step) => $body,
            Leaf::HttpRequest($step) => $body,
            Leaf::SetVariables($step) => $body,
            Leaf::WaitForReply($step) => $body,
            Leaf::EndConversation($step) => $body,
            Leaf::Stop($step) => $body,
        }
    };
}

fn type_of<S: StepType>(_: &S) -> &'static str {
    S::TYPE
}

fn has_side_effects<S: StepType>(_: &S) -> bool {
    S::SIDE_EFFECTS
}

fn waits<S: StepType>(_: &S) -> bool {
    S::WAITS
}

fn sends_through_messaging<S: StepType>(_: &S) -> bool {
    S::SENDS_THROUGH_MESSAGING
}

impl Leaf {
    /// The `type` written in the definition.
    pub fn kind(&self) -> &'static str {
        dispatch!(self, step => type_of(step))
    }

    /// Whether running the step acts on the world (a message, a model call, a request, a
    /// conversation's end) or waits on it: what a dry run skips.
    pub fn has_side_effects(&self) -> bool {
        dispatch!(self, step => has_side_effects(step))
    }

    /// Whether a run may wait at the step (a delay, a wait for a reply).
    pub fn waits(&self) -> bool {
        dispatch!(self, step => waits(step))
    }

    /// Whether the step's send flushes the commits before it leaves (`StepType`).
    pub fn sends_through_messaging(&self) -> bool {
        dispatch!(self, step => sends_through_messaging(step))
    }

    pub(crate) fn validate(&self, path: &str, checks: &mut Checks<'_>) {
        dispatch!(self, step => step.validate(path, checks))
    }

    pub(crate) async fn run(&self, cx: &StepContext<'_>) -> Result<Outcome, StepError> {
        dispatch!(self, step => step.run(cx).await)
    }

    pub(crate) async fn simulate(&self, cx: &Simulation<'_>) -> Result<Outcome, StepError> {
        dispatch!(self, step => step.simulate(cx).await)
    }
}

/// What running a step came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done: the step's output.
    Output(Value),
    /// Done: these variables are set, and are the step's output.
    Variables(Map<String, Value>),
    /// Done, and the run ends here, successfully.
    Stop,
    /// The run waits at the step (a delay, a reply); the step's output comes when it wakes.
    Park(Park),
}

/// How a run waits at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Park {
    pub until: Deadline,
    pub reason: WakeReason,
    /// What a reply that ends the wait is parked under (`runs::reply_key`).
    pub waiting_for: Option<String>,
}

/// When a parked step's wait ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadline {
    /// This many seconds after the step started.
    After(u64),
    At(DateTime<Utc>),
}

/// Why a step failed, and whether trying again may help.
#[derive(Debug, Clone)]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
    /// The provider asked to wait at least this long.
    pub retry_after: Option<Duration>,
}

impl StepError {
    /// A mistake in the flow or its data (a missing variable): the same input fails again.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A template of `field` gave no result: the template's fault fails for good (a limit
    /// included, so a hostile template is not retried); the sandbox's may pass later.
    pub fn template(field: &str, error: TemplateError) -> Self {
        match error {
            TemplateError::Template(m) => Self::permanent(format!("{field}: {m}")),
            TemplateError::Unavailable(m) => {
                tracing::error!(field, error = %m, "the template sandbox failed a step");
                Self::transient(format!("{field}: {m}"))
            }
        }
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        if matches!(e, Error::Database(_) | Error::Internal(_)) {
            // The run shows only "internal error"; the operator needs the cause.
            tracing::error!(error = ?e, "a flow step failed inside Waflow");
        }
        let retry_after = match &e {
            Error::RateLimited {
                retry_after_seconds,
            } => Some(Duration::from_secs(*retry_after_seconds)),
            _ => None,
        };
        // Input a retry cannot change fails at once; the rest may pass later.
        let retryable = !matches!(
            e.code(),
            "VALIDATION_FAILED"
                | "INVALID_PHONE_NUMBER"
                | "NOT_FOUND"
                | "SENDER_NOT_FOUND"
                | "TEMPLATE_NOT_FOUND"
                | "TEMPLATE_NOT_APPROVED"
                | "TEMPLATE_VARIABLES_MISMATCH"
                | "MESSAGE_TOO_LONG"
                | "RECIPIENT_OPTED_OUT"
        );
        Self {
            message: format!("{}: {}", e.code(), e.public_message()),
            retryable,
            retry_after,
        }
    }
}

pub type StepResult = Result<Value, StepError>;

/// Where a step runs for real: its services, workspace, template context and idempotency key.
/// Steps with side effects go through the same service their GraphQL mutation uses, so a flow
/// obeys every rule a direct call does; a send carries the idempotency key (run, step,
/// iteration, attempt), so a job re-run after a crash finds the message instead of sending it
/// again.
pub struct StepContext<'a> {
    pub services: &'a Services,
    pub workspace_id: Uuid,
    /// What templates see (`RunState::context`).
    pub context: &'a Value,
    /// The whole step rendered over `context` at once, or why it could not be. Steps render
    /// field by field, to name the field a template failed in; this is for those that take
    /// their input whole.
    pub rendered: &'a Result<Value, TemplateError>,
    pub idempotency_key: String,
    /// The run's place in a chain of runs calling webhooks (`RunState::hop`).
    pub hop: u32,
}

impl StepContext<'_> {
    fn templates(&self) -> Templates<'_> {
        self.services.sandbox.for_workspace(self.workspace_id)
    }

    pub async fn render(&self, field: &str, template: &str) -> Result<String, StepError> {
        self.templates()
            .render(template, self.context)
            .await
            .map_err(|e| StepError::template(field, e))
    }

    pub async fn render_value(&self, field: &str, value: &Value) -> Result<Value, StepError> {
        self.templates()
            .render_value(value, self.context)
            .await
            .map_err(|e| StepError::template(field, e))
    }
}

/// Where a step runs in a dry run: nothing is sent or stored.
pub struct Simulation<'a> {
    pub services: &'a Services,
    pub step_id: &'a str,
    /// The step rendered whole over the run's context (it rendered, or the dry run fails the
    /// step before asking).
    pub input: &'a Value,
    /// Perform HTTP GET requests for real (`DryRunOptions::allow_http`).
    pub allow_http: bool,
    pub hop: u32,
}

/// A send's output: the message, or a failure when the provider refused it.
fn message_output(m: &message::Model) -> StepResult {
    if m.status == MessageStatus::Failed {
        return Err(StepError::transient(format!(
            "PROVIDER_ERROR: the message failed: {}",
            m.error_message.as_deref().unwrap_or("no reason given")
        )));
    }
    Ok(json!({
        "message_id": m.id,
        "conversation_id": m.conversation_id,
        "status": m.status,
        "body": m.body,
        "provider_message_id": m.provider_message_id,
    }))
}

/// A dry run's send: `message_output`'s shape, with the message that would have been sent.
fn unsent_message(cx: &Simulation<'_>) -> Outcome {
    let input = cx.input;
    Outcome::Output(
        json!({"dry_run": true, "sent": false, "message_id": format!("dry-run-{}", cx.step_id),
            "conversation_id": null, "status": "QUEUED", "body": input.get("text"),
            "provider_message_id": null, "message": input}),
    )
}
