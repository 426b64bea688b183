//! Dry runs: a flow walked with a payload and no side effects. Sends, AI replies and HTTP
//! requests are rendered but not performed (an HTTP GET may be, when allowed), delays and waits
//! are skipped, and the answer is the step-by-step trace a run would have recorded. A skipped
//! side effect answers a placeholder of its real output's shape (a send's `message_id`, an HTTP
//! request's `status` and `body`), or the output the caller gave for that step, so the steps
//! after it can be traced.

use serde_json::{Value, json};

use uuid::Uuid;

use super::{
    definition::{Action, Definition, Leaf, Step},
    state::RunState,
};
use crate::{Services, sandbox::Templates};

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

/// What ends a walk early.
enum Halt {
    Stop,
    Failed(String),
}

struct Walker<'a> {
    services: &'a Services,
    workspace_id: Uuid,
    options: DryRunOptions,
    trigger: Value,
    state: RunState,
    loops: Vec<usize>,
    /// `loop` as templates see it inside the innermost loop.
    current_loop: Option<Value>,
    steps: Vec<TracedStep>,
}

/// Walks `definition` with `payload` as its trigger.
pub async fn dry_run(
    services: &Services,
    workspace_id: Uuid,
    definition: &Definition,
    payload: Value,
    options: DryRunOptions,
) -> Trace {
    let mut walker = Walker {
        services,
        workspace_id,
        options,
        trigger: payload,
        state: RunState::new(),
        loops: Vec::new(),
        current_loop: None,
        steps: Vec::new(),
    };
    let outcome = walker.walk(&definition.steps, "steps").await;
    let error = match outcome {
        Ok(()) | Err(Halt::Stop) => None,
        Err(Halt::Failed(error)) => Some(error),
    };
    Trace {
        succeeded: error.is_none(),
        error,
        steps: walker.steps,
    }
}

impl<'a> Walker<'a> {
    fn templates(&self) -> Templates<'a> {
        self.services.sandbox.for_workspace(self.workspace_id)
    }

    fn trace(
        &mut self,
        step: &Step,
        path: &str,
        input: Option<Value>,
        result: Result<Value, String>,
    ) -> Result<(), Halt> {
        let also_vars = matches!(step.action, Action::Leaf(Leaf::SetVariables { .. }));
        let result = result.and_then(|output| {
            super::limits::step_output(&output, &self.state, also_vars).map(|()| output)
        });
        let (succeeded, output, error) = match result {
            Ok(output) => (true, Some(output), None),
            Err(error) => (false, None, Some(error)),
        };
        self.steps.push(TracedStep {
            step_id: step.id.clone(),
            step_type: step.action.kind(),
            path: path.to_owned(),
            iteration: self
                .loops
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("."),
            succeeded,
            input,
            output: output.clone(),
            error: error.clone(),
        });
        match (output, error) {
            (Some(output), _) => {
                self.state.steps.insert(step.id.clone(), output);
                Ok(())
            }
            (None, Some(error)) if step.on_error == super::definition::OnError::Continue => {
                self.state
                    .steps
                    .insert(step.id.clone(), json!({"error": error}));
                Ok(())
            }
            (_, error) => Err(Halt::Failed(format!(
                "{path} ({}): {}",
                step.id,
                error.unwrap_or_default()
            ))),
        }
    }

    fn walk<'s>(
        &'s mut self,
        steps: &'s [Step],
        path: &'s str,
    ) -> futures::future::BoxFuture<'s, Result<(), Halt>> {
        Box::pin(async move {
            for (i, step) in steps.iter().enumerate() {
                let at = format!("{path}[{i}]");
                self.step(step, &at).await?;
            }
            Ok(())
        })
    }

    async fn step(&mut self, step: &Step, at: &str) -> Result<(), Halt> {
        let context = self.loop_context();
        match &step.action {
            Action::Branch {
                branches,
                otherwise,
            } => {
                let mut chosen = None;
                for (i, branch) in branches.iter().enumerate() {
                    match self.templates().is_true(&branch.when, &context).await {
                        Ok(true) => {
                            chosen = Some(i);
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            return self.trace(
                                step,
                                at,
                                None,
                                Err(format!("branches[{i}].when: {e}")),
                            );
                        }
                    }
                }
                let output = json!({"branch": chosen.map_or(json!("else"), |i| json!(i))});
                self.trace(step, at, None, Ok(output))?;
                match chosen {
                    Some(i) => {
                        self.walk(&branches[i].steps, &format!("{at}.branches[{i}].steps"))
                            .await
                    }
                    None => self.walk(otherwise, &format!("{at}.else")).await,
                }
            }
            Action::Loop { items, steps } => {
                let list = match self.templates().eval(items, &context).await {
                    Ok(Value::Array(list)) => list,
                    Ok(other) => {
                        return self.trace(
                            step,
                            at,
                            None,
                            Err(format!("items: {items:?} gives {other}, not a list")),
                        );
                    }
                    Err(e) => return self.trace(step, at, None, Err(format!("items: {e}"))),
                };
                if let Err(e) = super::limits::loop_items(&list, &self.state) {
                    return self.trace(step, at, None, Err(e));
                }
                self.trace(step, at, None, Ok(json!({"count": list.len()})))?;
                let outer = self.current_loop.take();
                let mut walked = Ok(());
                for (index, item) in list.iter().enumerate() {
                    self.loops.push(index);
                    self.current_loop =
                        Some(json!({"item": item, "index": index, "first": index == 0,
                        "last": index + 1 == list.len(), "length": list.len()}));
                    walked = self.walk(steps, &format!("{at}.steps")).await;
                    self.loops.pop();
                    if walked.is_err() {
                        break;
                    }
                }
                self.current_loop = outer;
                walked
            }
            Action::Leaf(leaf) => {
                let raw = serde_json::to_value(leaf).unwrap_or(Value::Null);
                let input = match self.templates().render_value(&raw, &context).await {
                    Ok(input) => input,
                    Err(e) => return self.trace(step, at, Some(raw), Err(e.to_string())),
                };
                let result = match self.options.step_outputs.get(&step.id) {
                    Some(given) if leaf.has_side_effects() => Ok(given.clone()),
                    _ => self.leaf(&step.id, leaf, &input).await,
                };
                let stop = matches!(leaf, Leaf::Stop {});
                self.trace(step, at, Some(input), result)?;
                if stop { Err(Halt::Stop) } else { Ok(()) }
            }
        }
    }

    /// The context, with the innermost loop's item when inside a loop.
    fn loop_context(&self) -> Value {
        let mut context = self
            .state
            .context(&self.trigger, uuid::Uuid::nil(), uuid::Uuid::nil());
        if let Some(current) = &self.current_loop {
            context["loop"] = current.clone();
        }
        context
    }

    /// What the step would do, without doing it: a placeholder of the real output's shape
    /// (`flows::actions`), marked `dry_run`.
    async fn leaf(&mut self, step_id: &str, leaf: &Leaf, input: &Value) -> Result<Value, String> {
        Ok(match leaf {
            Leaf::SendTemplate { .. } | Leaf::SendText { .. } | Leaf::SendMessage { .. } => {
                json!({"dry_run": true, "sent": false, "message_id": format!("dry-run-{step_id}"),
                    "conversation_id": null, "status": "QUEUED", "body": input.get("text"),
                    "provider_message_id": null, "message": input})
            }
            Leaf::GenerateAiReply { .. } => {
                json!({"dry_run": true, "reply": "(the assistant's reply)", "conversation_id": null,
                    "message_id": null, "ai_disabled": false, "request": input})
            }
            Leaf::EndConversation { .. } => {
                json!({"dry_run": true, "conversation_id": input["conversationId"], "already_ended": false})
            }
            Leaf::Delay { .. } => json!({"dry_run": true, "skipped": true}),
            Leaf::WaitForReply { .. } => {
                json!({"dry_run": true, "skipped": true, "timed_out": false, "message": null})
            }
            Leaf::Stop {} => json!({"stopped": true}),
            // Rendered with the step's input.
            Leaf::SetVariables { .. } => {
                let rendered = input["values"].clone();
                if let Value::Object(map) = &rendered {
                    self.state.vars.extend(map.clone());
                }
                rendered
            }
            Leaf::HttpRequest { method, .. } => {
                if self.options.allow_http && method.eq_ignore_ascii_case("GET") {
                    let url = input["url"].as_str().unwrap_or_default();
                    let headers: Vec<(String, String)> = input["headers"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect();
                    let call = super::actions::Call {
                        method: "GET",
                        url,
                        headers: &headers,
                        body: None,
                        timeout: std::time::Duration::from_secs(10),
                        hop: self.state.hop,
                    };
                    super::actions::exchange(self.services, call)
                        .await
                        .map_err(|e| e.message)?
                } else {
                    // The answer's shape with an empty body: give `stepOutputs` (or allowHttp
                    // for a GET) to trace steps that read the body.
                    json!({"dry_run": true, "performed": false, "status": 200, "headers": {},
                        "body": {}, "truncated": false, "request": input})
                }
            }
        })
    }
}
