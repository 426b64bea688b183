//! A flow definition: the JSON document a user writes (a trigger, then steps), parsed into types
//! the engine walks. Parsing reports every structural problem at once, each at its path
//! (`steps[2].branches[0].steps[1]`); `validate` adds the checks that need the database.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::steps;
use crate::validation::Problems;

/// The default retry: wait a minute, retry once (two attempts in all).
pub const DEFAULT_RETRY: Retry = Retry {
    max_attempts: 2,
    backoff_seconds: 60,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub trigger: Trigger,
    /// A template; runs whose keys render equal run one at a time, in arrival order.
    pub concurrency_key: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Trigger {
    MessageReceived {
        sender_id: Option<Uuid>,
        #[serde(rename = "match")]
        matcher: Option<TextMatch>,
    },
    ConversationStarted {
        sender_id: Option<Uuid>,
    },
    ConversationEnded {
        sender_id: Option<Uuid>,
    },
    Schedule {
        cron: String,
        timezone: Option<String>,
    },
    Webhook {},
    Event {
        name: String,
    },
    Manual {},
}

impl Trigger {
    /// The name runs record and the trigger index is keyed by.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::MessageReceived { .. } => "message_received",
            Trigger::ConversationStarted { .. } => "conversation_started",
            Trigger::ConversationEnded { .. } => "conversation_ended",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Webhook {} => "webhook",
            Trigger::Event { .. } => "event",
            Trigger::Manual {} => "manual",
        }
    }

    /// The sender a WhatsApp trigger is limited to.
    pub fn sender_id(&self) -> Option<Uuid> {
        match self {
            Trigger::MessageReceived { sender_id, .. }
            | Trigger::ConversationStarted { sender_id }
            | Trigger::ConversationEnded { sender_id } => *sender_id,
            _ => None,
        }
    }
}

/// Which inbound messages start a run: every condition given must hold (case-insensitive for
/// `contains` and `equals`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TextMatch {
    pub contains: Option<String>,
    pub equals: Option<String>,
    pub regex: Option<String>,
}

impl TextMatch {
    pub fn matches(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.contains
            .as_ref()
            .is_none_or(|c| lower.contains(&c.to_lowercase()))
            && self
                .equals
                .as_ref()
                .is_none_or(|e| text.trim().eq_ignore_ascii_case(e.trim()))
            && self.regex.as_ref().is_none_or(|r| {
                regex::Regex::new(r)
                    .map(|re| re.is_match(text))
                    .unwrap_or(false)
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Fail,
    Continue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub action: Action,
    pub retry: Retry,
    pub on_error: OnError,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Branch {
        branches: Vec<Branch>,
        otherwise: Vec<Step>,
    },
    Loop {
        items: String,
        steps: Vec<Step>,
    },
    Leaf(Leaf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// An expression, like `trigger.message | lower == 'yes'`.
    pub when: String,
    pub steps: Vec<Step>,
}

pub use super::steps::TemplateVariables;

/// The steps that do one thing, one type each (`flows::steps`). String fields are templates
/// over the run's context.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Leaf {
    SendTemplate(steps::SendTemplate),
    SendText(steps::SendText),
    SendMessage(steps::SendMessage),
    GenerateAiReply(steps::GenerateAiReply),
    Delay(steps::Delay),
    HttpRequest(steps::HttpRequest),
    SetVariables(steps::SetVariables),
    WaitForReply(steps::WaitForReply),
    EndConversation(steps::EndConversation),
    Stop(steps::Stop),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Branch { .. } => "branch",
            Action::Loop { .. } => "loop",
            Action::Leaf(leaf) => leaf.kind(),
        }
    }
}

/// Parses a definition, or answers every problem found with its path.
pub fn parse(value: &Value) -> Result<Definition, Problems> {
    let mut problems = Problems::new();
    let Some(object) = value.as_object() else {
        problems.add("definition", "must be a JSON object");
        return Err(problems);
    };
    for key in object.keys() {
        if !["trigger", "concurrencyKey", "steps"].contains(&key.as_str()) {
            problems.add(
                key.clone(),
                "is not a definition field (trigger, concurrencyKey, steps)",
            );
        }
    }
    let trigger = match object.get("trigger") {
        None => {
            problems.add("trigger", "is required");
            None
        }
        Some(t) => match Trigger::deserialize(t) {
            Ok(trigger) => Some(trigger),
            Err(e) => {
                problems.add("trigger", e.to_string());
                None
            }
        },
    };
    let concurrency_key = match object.get("concurrencyKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.add("concurrencyKey", "must be a string (a template)");
            None
        }
    };
    let mut ids = HashSet::new();
    let steps = match object.get("steps") {
        Some(steps) => parse_steps(steps, "steps", &mut problems, &mut ids),
        None => {
            problems.add("steps", "is required");
            Vec::new()
        }
    };
    if steps.is_empty() && object.get("steps").is_some_and(Value::is_array) {
        problems.add("steps", "name at least one step");
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Definition {
        trigger: trigger.expect("a trigger when there are no problems"),
        concurrency_key,
        steps,
    })
}

fn parse_steps(
    value: &Value,
    path: &str,
    problems: &mut Problems,
    ids: &mut HashSet<String>,
) -> Vec<Step> {
    let Some(list) = value.as_array() else {
        problems.add(path, "must be a list of steps");
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .filter_map(|(i, step)| parse_step(step, &format!("{path}[{i}]"), problems, ids))
        .collect()
}

fn valid_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 64
}

fn parse_step(
    value: &Value,
    path: &str,
    problems: &mut Problems,
    ids: &mut HashSet<String>,
) -> Option<Step> {
    let Some(object) = value.as_object() else {
        problems.add(path, "must be an object with an id and a type");
        return None;
    };
    let mut rest = object.clone();
    let id = match rest.remove("id") {
        Some(Value::String(id)) if valid_id(&id) => {
            if !ids.insert(id.clone()) {
                problems.add(
                    format!("{path}.id"),
                    format!("{id:?} is the id of another step"),
                );
            }
            Some(id)
        }
        Some(_) => {
            problems.add(
                format!("{path}.id"),
                "must be letters, digits and underscores, starting with a letter",
            );
            None
        }
        None => {
            problems.add(format!("{path}.id"), "is required");
            None
        }
    };
    let retry = match rest.remove("retry") {
        None | Some(Value::Null) => Some(DEFAULT_RETRY),
        Some(v) => match Retry::deserialize(&v) {
            Ok(r) if (1..=10).contains(&r.max_attempts) && r.backoff_seconds <= 86_400 => Some(r),
            Ok(_) => {
                problems.add(
                    format!("{path}.retry"),
                    "maxAttempts must be 1 to 10 and backoffSeconds at most 86400",
                );
                None
            }
            Err(e) => {
                problems.add(format!("{path}.retry"), e.to_string());
                None
            }
        },
    };
    let on_error = match rest.remove("onError") {
        None | Some(Value::Null) => Some(OnError::Fail),
        Some(v) => match OnError::deserialize(&v) {
            Ok(o) => Some(o),
            Err(_) => {
                problems.add(
                    format!("{path}.onError"),
                    "must be \"fail\" or \"continue\"",
                );
                None
            }
        },
    };
    let action = match rest.get("type").and_then(Value::as_str) {
        Some("branch") => parse_branch(&rest, path, problems, ids),
        Some("loop") => parse_loop(&rest, path, problems, ids),
        Some(_) => match Leaf::deserialize(&Value::Object(rest)) {
            Ok(leaf) => Some(Action::Leaf(leaf)),
            Err(e) => {
                problems.add(path, e.to_string());
                None
            }
        },
        None => {
            problems.add(format!("{path}.type"), "is required");
            None
        }
    };
    Some(Step {
        id: id?,
        action: action?,
        retry: retry?,
        on_error: on_error?,
    })
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], path: &str, problems: &mut Problems) {
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            problems.add(
                format!("{path}.{key}"),
                format!(
                    "is not a field of this step (expected one of {})",
                    allowed.join(", ")
                ),
            );
        }
    }
}

fn parse_branch(
    object: &Map<String, Value>,
    path: &str,
    problems: &mut Problems,
    ids: &mut HashSet<String>,
) -> Option<Action> {
    only_keys(object, &["type", "branches", "else"], path, problems);
    let Some(list) = object.get("branches").and_then(Value::as_array) else {
        problems.add(
            format!("{path}.branches"),
            "is required: a list of {when, steps}",
        );
        return None;
    };
    if list.is_empty() {
        problems.add(format!("{path}.branches"), "name at least one branch");
    }
    let mut branches = Vec::new();
    for (i, branch) in list.iter().enumerate() {
        let at = format!("{path}.branches[{i}]");
        let when = branch.get("when").and_then(Value::as_str);
        if when.is_none() {
            problems.add(format!("{at}.when"), "is required: an expression");
        }
        let steps = match branch.get("steps") {
            Some(steps) => parse_steps(steps, &format!("{at}.steps"), problems, ids),
            None => {
                problems.add(format!("{at}.steps"), "is required");
                Vec::new()
            }
        };
        if let Some(when) = when {
            branches.push(Branch {
                when: when.to_owned(),
                steps,
            });
        }
    }
    let otherwise = match object.get("else") {
        Some(steps) => parse_steps(steps, &format!("{path}.else"), problems, ids),
        None => Vec::new(),
    };
    Some(Action::Branch {
        branches,
        otherwise,
    })
}

fn parse_loop(
    object: &Map<String, Value>,
    path: &str,
    problems: &mut Problems,
    ids: &mut HashSet<String>,
) -> Option<Action> {
    only_keys(object, &["type", "items", "steps"], path, problems);
    let items = object.get("items").and_then(Value::as_str);
    if items.is_none() {
        problems.add(
            format!("{path}.items"),
            "is required: an expression giving the list to loop over",
        );
    }
    let steps = match object.get("steps") {
        Some(steps) => parse_steps(steps, &format!("{path}.steps"), problems, ids),
        None => {
            problems.add(format!("{path}.steps"), "is required");
            Vec::new()
        }
    };
    Some(Action::Loop {
        items: items?.to_owned(),
        steps,
    })
}

/// Every step of the definition, depth first, with its path.
pub fn walk(steps: &[Step], path: &str, visit: &mut impl FnMut(&Step, &str)) {
    for (i, step) in steps.iter().enumerate() {
        let at = format!("{path}[{i}]");
        visit(step, &at);
        match &step.action {
            Action::Branch {
                branches,
                otherwise,
            } => {
                for (k, branch) in branches.iter().enumerate() {
                    walk(&branch.steps, &format!("{at}.branches[{k}].steps"), visit);
                }
                walk(otherwise, &format!("{at}.else"), visit);
            }
            Action::Loop { steps, .. } => walk(steps, &format!("{at}.steps"), visit),
            Action::Leaf(_) => {}
        }
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any JSON saved as a flow is either a definition or a list of problems.
        #[test]
        fn parsing_any_definition(value in crate::test_support::json()) {
            let _ = super::parse(&value);
        }
    }
}

#[cfg(test)]
mod leaf_shape {
    use serde_json::json;

    use super::{Action, Leaf, parse};

    fn leaf(step: serde_json::Value) -> Leaf {
        let definition = parse(&json!({"trigger": {"type": "manual"}, "steps": [step]}))
            .unwrap_or_else(|p| panic!("{:?}", p.into_result().err()));
        match definition.steps[0].action.clone() {
            Action::Leaf(leaf) => leaf,
            other => panic!("{other:?}"),
        }
    }

    /// A step's input, as runs record it, is the step as written: its type first, then its
    /// fields in camelCase, defaults filled in.
    #[test]
    fn a_leaf_serializes_as_it_is_written() {
        let sender = "0193a9e4-0000-7000-8000-000000000001";
        let cases = [
            (
                json!({"id": "a", "type": "send_text", "senderId": sender, "to": "+1", "text": "hi"}),
                json!({"type": "send_text", "senderId": sender, "to": "+1", "text": "hi"}),
            ),
            (
                json!({"id": "a", "type": "send_template", "senderId": sender, "template": "t",
                    "language": "en", "to": "+1"}),
                json!({"type": "send_template", "senderId": sender, "template": "t",
                    "language": "en", "to": "+1", "variables": [], "recipientName": null,
                    "header": null}),
            ),
            (
                json!({"id": "a", "type": "http_request", "url": "https://x.test"}),
                json!({"type": "http_request", "method": "GET", "url": "https://x.test",
                    "headers": {}, "body": null, "timeoutSeconds": null}),
            ),
            (json!({"id": "a", "type": "stop"}), json!({"type": "stop"})),
        ];
        for (written, recorded) in cases {
            let leaf = leaf(written);
            assert_eq!(serde_json::to_value(&leaf).unwrap(), recorded);
            assert_eq!(leaf.kind(), recorded["type"]);
        }
    }

    #[test]
    fn an_unknown_field_of_a_step_is_named() {
        let problems = parse(&json!({"trigger": {"type": "manual"},
            "steps": [{"id": "a", "type": "stop", "at": 1}]}))
        .unwrap_err();
        let message = format!("{:?}", problems.into_result().unwrap_err());
        assert!(message.contains("unknown field `at`"), "{message}");
    }
}
