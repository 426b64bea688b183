//! Dry runs: a flow walked with a payload and no side effects. Sends, AI replies and HTTP
//! requests are rendered but not performed (an HTTP GET may be, when allowed), delays and waits
//! are skipped, and the answer is the step-by-step trace a run would have recorded. A skipped
//! side effect answers a placeholder of its real output's shape (a send's `message_id`, an HTTP
//! request's `status` and `body`), or the output the caller gave for that step, so the steps
//! after it can be traced.
//!
//! The walk is the engine's (`interpreter`); this module is its effects for a dry run: each
//! step's `simulate`, a trace instead of step records, no retries, nothing saved.

use serde_json::Value;
use uuid::Uuid;

use super::{
    definition::{Definition, Leaf, Step},
    interpreter::{self, Effects},
    state::RunState,
    steps::{Outcome, Park, Simulation, StepError},
};
use crate::{
    Services,
    error::Result,
    sandbox::{TemplateError, Templates},
};

/// One step as the dry run saw it.
#[derive(Debug, Clone)]
pub struct TracedStep {
    pub step_id: String,
    pub step_type: &'static str,
    /// The step's place in the definition, like `steps[1].branches[0].steps[0]`.
    pub path: String,
    /// Loop item indices around the step, like a run's.
    pub iteration: String,
    pub succeeded: bool,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Trace {
    pub succeeded: bool,
    pub error: Option<String>,
    pub steps: Vec<TracedStep>,
}

/// How a dry run treats side effects.
#[derive(Debug, Clone, Default)]
pub struct DryRunOptions {
    /// Perform HTTP GET requests for real.
    pub allow_http: bool,
    /// Outputs to use for side-effecting steps, by step id, instead of their placeholders
    /// (what `calendar` would have answered).
    pub step_outputs: serde_json::Map<String, Value>,
}

/// A dry run's effects: the trace so far, and the first error that ended the walk.
struct Tracer<'a> {
    services: &'a Services,
    workspace_id: Uuid,
    options: DryRunOptions,
    trigger: Value,
    state: RunState,
    steps: Vec<TracedStep>,
    error: Option<String>,
}

/// Walks `definition` with `payload` as its trigger.
pub async fn dry_run(
    services: &Services,
    workspace_id: Uuid,
    definition: &Definition,
    payload: Value,
    options: DryRunOptions,
) -> Trace {
    let mut tracer = Tracer {
        services,
        workspace_id,
        options,
        trigger: payload,
        state: RunState::new(),
        steps: Vec::new(),
        error: None,
    };
    if let Err(error) = interpreter::advance(&mut tracer, definition).await {
        // Nothing a dry run does reaches the database; should it come to fail, the trace
        // says so rather than pass.
        tracing::error!(%error, "a dry run failed inside Waflow");
        tracer.error.get_or_insert_with(|| error.to_string());
    }
    Trace {
        succeeded: tracer.error.is_none(),
        error: tracer.error,
        steps: tracer.steps,
    }
}

impl Effects for Tracer<'_> {
    fn state(&self) -> &RunState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut RunState {
        &mut self.state
    }

    fn templates(&self) -> Templates<'_> {
        self.services.sandbox.for_workspace(self.workspace_id)
    }

    fn context(&self) -> Value {
        self.state.context(&self.trigger, Uuid::nil(), Uuid::nil())
    }

    /// A step that cannot be rendered whole fails; a side effect answers the caller's output
    /// for the step if given, else the step's simulation.
    async fn perform(
        &mut self,
        step: &Step,
        leaf: &Leaf,
        _context: &Value,
        rendered: &Result<Value, TemplateError>,
        _input: &Value,
    ) -> Result<Result<Outcome, StepError>> {
        let input = match rendered {
            Ok(input) => input,
            Err(e) => return Ok(Err(StepError::permanent(e.to_string()))),
        };
        if leaf.has_side_effects()
            && let Some(given) = self.options.step_outputs.get(&step.id)
        {
            return Ok(Ok(Outcome::Output(given.clone())));
        }
        let simulation = Simulation {
            services: self.services,
            step_id: &step.id,
            input,
            allow_http: self.options.allow_http,
            hop: self.state.hop,
        };
        Ok(leaf.simulate(&simulation).await)
    }

    async fn finish(
        &mut self,
        step: &Step,
        input: Option<&Value>,
        result: Result<&Value, &StepError>,
    ) -> Result<()> {
        let (output, error) = match result {
            Ok(output) => (Some(output.clone()), None),
            Err(error) => (None, Some(error.message.clone())),
        };
        self.steps.push(TracedStep {
            step_id: step.id.clone(),
            step_type: step.action.kind(),
            path: self.state.path(),
            iteration: self.state.iteration(),
            succeeded: error.is_none(),
            input: input.cloned(),
            output,
            error,
        });
        Ok(())
    }

    /// Steps that wait answer a placeholder in `simulate`: nothing parks.
    async fn park(&mut self, step: &Step, _: Option<&Value>, _: Park) -> Result<()> {
        let error = format!("{} ({}): a dry run cannot wait", self.state.path(), step.id);
        self.error.get_or_insert(error);
        Ok(())
    }

    async fn retry(&mut self, _: &Step, _: &StepError) -> Result<bool> {
        Ok(false)
    }

    async fn checkpoint(&mut self) -> Result<bool> {
        Ok(true)
    }

    async fn succeed(&mut self) -> Result<()> {
        Ok(())
    }

    async fn fail(&mut self, step: &Step, error: String) -> Result<()> {
        self.error = Some(format!("{} ({}): {error}", self.state.path(), step.id));
        Ok(())
    }
}
