//! The one walk of a flow's steps, shared by runs (`engine`) and dry runs (`dry_run`): which
//! branch is taken, what a loop goes over, what a step's outcome does to the run's state
//! (outputs, variables, the position in `RunState::frames`), and what a failure leads to
//! (`onError`). What differs between the two is behind [`Effects`]: a run performs its steps,
//! records them and saves its state where a crash must not lose it; a dry run simulates them
//! and traces them.
//!
//! The walk goes step by step over the state's frames, never by recursion, so a run saved
//! between any two steps (or parked at one) continues from there in another job.

use serde_json::{Value, json};

use super::{
    definition::{Action, Branch, Definition, Leaf, OnError, Step},
    limits,
    state::{Block, Frame, RunState, StepIndex},
    steps::{Outcome, Park, StepError},
};
use crate::{
    error::Result,
    sandbox::{TemplateError, Templates},
};

/// What walking a flow does to the world, and what it keeps of it: the run's or the dry run's.
///
/// Errors (`crate::Error`) are Waflow's own (a database that cannot be reached); they end the
/// walk and leave the run to be continued by another job. A step's failure is a `StepError`.
pub(crate) trait Effects {
    fn state(&self) -> &RunState;
    fn state_mut(&mut self) -> &mut RunState;
    fn templates(&self) -> Templates<'_>;
    /// What templates see at the current step (`RunState::context`).
    fn context(&self) -> Value;

    /// About to perform `leaf` with `input`: false when the walk must stop (the run was
    /// cancelled, or another job holds it now). A run saves itself before a side effect.
    async fn start(&mut self, _step: &Step, _leaf: &Leaf, _input: &Value) -> Result<bool> {
        Ok(true)
    }

    /// Performs a step that does one thing (or simulates it): `rendered` is the step rendered
    /// whole over `context`, `input` what its record shows (`rendered`, or the step as written
    /// when it cannot be).
    async fn perform(
        &mut self,
        step: &Step,
        leaf: &Leaf,
        context: &Value,
        rendered: &Result<Value, TemplateError>,
        input: &Value,
    ) -> Result<Result<Outcome, StepError>>;

    /// Records how a step ended: its output, or why it failed.
    async fn finish(
        &mut self,
        step: &Step,
        input: Option<&Value>,
        result: Result<&Value, &StepError>,
    ) -> Result<()>;

    /// Leaves the run waiting at `step` (a dry run does not wait).
    async fn park(&mut self, step: &Step, input: Option<&Value>, park: Park) -> Result<()>;

    /// Tries a failed step again later if it may be: true when a retry is scheduled, and the
    /// walk stops until then.
    async fn retry(&mut self, step: &Step, error: &StepError) -> Result<bool>;

    /// Before each step: keeps what must be kept of the state so far; false when the walk must
    /// stop (the run was cancelled, or another job holds it now).
    async fn checkpoint(&mut self) -> Result<bool>;

    /// The flow is done: it ran out of steps, or a `stop` step ended it.
    async fn succeed(&mut self) -> Result<()>;

    /// The run fails at `step`.
    async fn fail(&mut self, step: &Step, error: String) -> Result<()>;
}

/// Whether the walk goes on after a step.
enum Next {
    Continue,
    Stop,
}

/// Walks the steps from the state's position until the flow finishes, fails, or waits.
pub(crate) async fn advance<E: Effects>(fx: &mut E, definition: &Definition) -> Result<()> {
    let index = StepIndex::new(definition);
    loop {
        let Some(frame) = fx.state().frames.last().cloned() else {
            return fx.succeed().await;
        };
        let steps = index.steps(&frame.block);
        let Some(step) = steps.get(frame.index) else {
            fx.state_mut().leave_block(frame);
            continue;
        };
        if !fx.checkpoint().await? {
            return Ok(());
        }
        let next = match &step.action {
            Action::Branch { branches, .. } => branch(fx, step, branches).await?,
            Action::Loop { items, .. } => start_loop(fx, step, items).await?,
            Action::Leaf(leaf) => leaf_step(fx, step, leaf).await?,
        };
        if let Next::Stop = next {
            return Ok(());
        }
    }
}

/// Takes the first branch whose `when` holds, or `else`.
async fn branch<E: Effects>(fx: &mut E, step: &Step, branches: &[Branch]) -> Result<Next> {
    let context = fx.context();
    let mut chosen = None;
    for (i, branch) in branches.iter().enumerate() {
        match fx.templates().is_true(&branch.when, &context).await {
            Ok(true) => {
                chosen = Some(i);
                break;
            }
            Ok(false) => {}
            Err(e) => {
                let error = StepError::template(&format!("branches[{i}].when"), e);
                return failed(fx, step, None, error).await;
            }
        }
    }
    let output = json!({"branch": chosen.map_or(json!("else"), |i| json!(i))});
    done_at_once(fx, step, None, output).await?;
    fx.state_mut().frames.push(Frame {
        block: Block::Branch {
            step: step.id.clone(),
            branch: chosen,
        },
        index: 0,
    });
    Ok(Next::Continue)
}

/// Evaluates a loop's items and enters its first item (or passes an empty list by).
async fn start_loop<E: Effects>(fx: &mut E, step: &Step, items: &str) -> Result<Next> {
    let context = fx.context();
    let list = match fx.templates().eval(items, &context).await {
        Ok(Value::Array(list)) => list,
        Ok(other) => {
            let error = StepError::permanent(format!("items: {items:?} gives {other}, not a list"));
            return failed(fx, step, None, error).await;
        }
        Err(e) => return failed(fx, step, None, StepError::template("items", e)).await,
    };
    if let Err(e) = limits::loop_items(&list, fx.state()) {
        return failed(fx, step, None, StepError::permanent(e)).await;
    }
    let output = json!({"count": list.len()});
    done_at_once(fx, step, None, output).await?;
    let state = fx.state_mut();
    if list.is_empty() {
        state.step_done();
    } else {
        state.frames.push(Frame {
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

/// A step that does one thing, performed (or simulated) by the effects.
async fn leaf_step<E: Effects>(fx: &mut E, step: &Step, leaf: &Leaf) -> Result<Next> {
    let context = fx.context();
    let raw = serde_json::to_value(leaf).expect("a step serializes");
    // The step's record shows its input rendered; a template that cannot be rendered shows as
    // written (and fails the step where it is used, with its field named).
    let rendered = fx.templates().render_value(&raw, &context).await;
    let input = rendered.clone().unwrap_or(raw);
    if !fx.start(step, leaf, &input).await? {
        return Ok(Next::Stop);
    }
    let outcome = match fx.perform(step, leaf, &context, &rendered, &input).await? {
        Ok(outcome) => outcome,
        Err(error) => return failed(fx, step, Some(&input), error).await,
    };
    match outcome {
        Outcome::Output(output) => {
            // An output the run cannot hold fails the step like any error (a step with side
            // effects was performed: its record says so, and a retry finds the message by its
            // key).
            if let Err(e) = limits::step_output(&output, fx.state(), false) {
                return failed(fx, step, Some(&input), StepError::permanent(e)).await;
            }
            done_at_once(fx, step, Some(&input), output).await?;
        }
        Outcome::Variables(values) => {
            let values = Value::Object(values);
            if let Err(e) = limits::step_output(&values, fx.state(), true) {
                return failed(fx, step, Some(&input), StepError::permanent(e)).await;
            }
            if let Value::Object(map) = &values {
                fx.state_mut().vars.extend(map.clone());
            }
            done_at_once(fx, step, Some(&input), values).await?;
        }
        Outcome::Stop => {
            done_at_once(fx, step, Some(&input), json!({"stopped": true})).await?;
            fx.succeed().await?;
            return Ok(Next::Stop);
        }
        Outcome::Park(park) => {
            fx.park(step, Some(&input), park).await?;
            return Ok(Next::Stop);
        }
    }
    fx.state_mut().step_done();
    Ok(Next::Continue)
}

/// A step that succeeded: its record and its output.
async fn done_at_once<E: Effects>(
    fx: &mut E,
    step: &Step,
    input: Option<&Value>,
    output: Value,
) -> Result<()> {
    fx.finish(step, input, Ok(&output)).await?;
    fx.state_mut().steps.insert(step.id.clone(), output);
    Ok(())
}

/// A step failed: recorded, then retried later, passed (`onError: continue`), or the run fails.
async fn failed<E: Effects>(
    fx: &mut E,
    step: &Step,
    input: Option<&Value>,
    error: StepError,
) -> Result<Next> {
    fx.finish(step, input, Err(&error)).await?;
    if fx.retry(step, &error).await? {
        return Ok(Next::Stop);
    }
    if step.on_error == OnError::Continue {
        let state = fx.state_mut();
        state
            .steps
            .insert(step.id.clone(), json!({"error": error.message}));
        state.step_done();
        return Ok(Next::Continue);
    }
    fx.fail(step, error.message).await?;
    Ok(Next::Stop)
}
