//! A run's durable state, stored as JSON on its row after every step: where it is (a stack of
//! frames through branches and loops), what it knows (variables, step outputs) and what it waits
//! for. Any worker can load it and continue.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::definition::{Action, Definition, Step};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub frames: Vec<Frame>,
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// The latest output of each step, by id.
    #[serde(default)]
    pub steps: Map<String, Value>,
    /// The attempt of the current step, from 1.
    #[serde(default = "first")]
    pub attempt: u32,
    /// A job scheduled to continue the run (a delay, a retry's backoff, a reply's timeout).
    pub wake: Option<Wake>,
    /// How many runs, each calling the next one's webhook, came before this one (0 for a run
    /// nothing chained): its http_request steps send one more in `X-Waflow-Hop`.
    #[serde(default)]
    pub hop: u32,
}

fn first() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Frame {
    pub block: Block,
    /// The next step of the block to run.
    pub index: usize,
}

/// A list of steps: the flow's own, a branch's, or a loop's body at one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Block {
    Root,
    /// `branch` is the branch's position, or `None` for `else`.
    Branch {
        step: String,
        branch: Option<usize>,
    },
    Loop {
        step: String,
        items: Vec<Value>,
        item: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WakeReason {
    Delay,
    Retry,
    ReplyTimeout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wake {
    /// Only the job carrying this token may continue the run: older jobs are stale.
    pub token: Uuid,
    pub at: DateTime<Utc>,
    pub reason: WakeReason,
}

impl RunState {
    pub fn new() -> Self {
        Self {
            frames: vec![Frame {
                block: Block::Root,
                index: 0,
            }],
            attempt: 1,
            ..Self::default()
        }
    }

    /// The loop indices around the current step, like `"2"` or `"2.0"`; `""` outside loops.
    pub fn iteration(&self) -> String {
        self.frames
            .iter()
            .filter_map(|f| match &f.block {
                Block::Loop { item, .. } => Some(item.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The current step is done: move to the next one, first attempt.
    pub fn step_done(&mut self) {
        if let Some(parent) = self.frames.last_mut() {
            parent.index += 1;
        }
        self.attempt = 1;
    }

    /// A block's last step is done (`frame`, the last): the next item of a loop, or the step
    /// after the block.
    pub fn leave_block(&mut self, frame: Frame) {
        self.frames.pop();
        if let Block::Loop { step, items, item } = frame.block
            && item + 1 < items.len()
        {
            self.frames.push(Frame {
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

    /// The current step's place in the definition, like `steps[1].branches[0].steps[2]`.
    pub fn path(&self) -> String {
        let mut path = String::from("steps");
        for frame in &self.frames {
            match &frame.block {
                Block::Root => {}
                Block::Branch {
                    branch: Some(i), ..
                } => path.push_str(&format!(".branches[{i}].steps")),
                Block::Branch { branch: None, .. } => path.push_str(".else"),
                Block::Loop { .. } => path.push_str(".steps"),
            }
            path.push_str(&format!("[{}]", frame.index));
        }
        path
    }

    /// What templates see: `trigger`, `steps`, `vars`, and `loop` inside a loop.
    pub fn context(&self, trigger: &Value, run_id: Uuid, flow_id: Uuid) -> Value {
        let mut context = json!({
            "trigger": trigger,
            "steps": self.steps,
            "vars": self.vars,
            "run": {"id": run_id, "flow_id": flow_id},
        });
        if let Some((items, item)) = self.frames.iter().rev().find_map(|f| match &f.block {
            Block::Loop { items, item, .. } => Some((items, *item)),
            _ => None,
        }) {
            context["loop"] = json!({
                "item": items.get(item),
                "index": item,
                "first": item == 0,
                "last": item + 1 == items.len(),
                "length": items.len(),
            });
        }
        context
    }
}

/// Steps by id, to find the lists frames point into.
pub struct StepIndex<'d> {
    definition: &'d Definition,
    by_id: HashMap<&'d str, &'d Step>,
}

impl<'d> StepIndex<'d> {
    pub fn new(definition: &'d Definition) -> Self {
        let mut by_id = HashMap::new();
        fn add<'d>(steps: &'d [Step], by_id: &mut HashMap<&'d str, &'d Step>) {
            for step in steps {
                by_id.insert(step.id.as_str(), step);
                match &step.action {
                    Action::Branch {
                        branches,
                        otherwise,
                    } => {
                        for b in branches {
                            add(&b.steps, by_id);
                        }
                        add(otherwise, by_id);
                    }
                    Action::Loop { steps, .. } => add(steps, by_id),
                    Action::Leaf(_) => {}
                }
            }
        }
        add(&definition.steps, &mut by_id);
        Self { definition, by_id }
    }

    /// The steps of a block; empty when the definition no longer has it.
    pub fn steps(&self, block: &Block) -> &'d [Step] {
        match block {
            Block::Root => &self.definition.steps,
            Block::Branch { step, branch } => {
                match self.by_id.get(step.as_str()).map(|s| &s.action) {
                    Some(Action::Branch {
                        branches,
                        otherwise,
                    }) => match branch {
                        Some(i) => branches.get(*i).map_or(&[][..], |b| &b.steps),
                        None => otherwise,
                    },
                    _ => &[],
                }
            }
            Block::Loop { step, .. } => match self.by_id.get(step.as_str()).map(|s| &s.action) {
                Some(Action::Loop { steps, .. }) => steps,
                _ => &[],
            },
        }
    }
}
