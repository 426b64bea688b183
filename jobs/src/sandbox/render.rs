//! What runs inside the sandbox: minijinja with Waflow's settings, under limits on work (fuel,
//! counted in minijinja instructions) and output (bytes). Memory and time are bounded by the
//! sandbox process itself (`child`), because minijinja can allocate a lot in one instruction
//! (`'x' * 100000000` is one) and even while compiling (it folds constant expressions).
//!
//! Values and conditions are minijinja: `{{ trigger.customer_name }}` in a template,
//! `trigger.message | lower == 'yes'` as an expression. Undefined values are errors (strict),
//! so a missing variable fails its step instead of sending a customer an empty string.

use std::io::Write;

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Instructions one request may run: far beyond any message template (a loop over a thousand
/// items takes some 10,000), far below a hang (the nested loops of a hostile template).
pub const FUEL: u64 = 200_000;
/// Bytes one request may produce, all of its rendered strings together.
pub const MAX_OUTPUT: usize = 1 << 20;
/// Nesting of recursive loops and calls.
const RECURSION: usize = 64;

/// What to do with a template or expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// A template to text; an undefined value is an error, never an empty string: what is
    /// rendered reaches customers, and a hole in a message is worse than no message.
    Render { source: String, context: Value },
    /// An expression to its JSON value; undefined is an error.
    Eval { source: String, context: Value },
    /// An expression to its truth.
    IsTrue { source: String, context: Value },
    /// Every string of a JSON value rendered as a template; a string that is one `{{ … }}`
    /// keeps the type of what it gives (a list, a number).
    RenderValue { value: Value, context: Value },
    /// Whether each source compiles; one answer per source, `None` when it does.
    Check { sources: Vec<Source> },
}

/// A template or expression to compile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Source {
    Template(String),
    Expression(String),
}

/// The answer to a `Request`; `Failed` carries a message for the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Text(String),
    Value(Value),
    Bool(bool),
    Checked(Vec<Option<String>>),
    Failed(String),
}

impl Response {
    /// Whether the request hit a limit: the process that served it may hold on to memory it
    /// used, so it is replaced.
    pub fn hit_a_limit(&self) -> bool {
        matches!(self, Response::Failed(m) if m.contains(LIMIT_MARK))
    }
}

/// Every limit message contains this, so the caller can tell a limit from a mistake.
const LIMIT_MARK: &str = "limit";

/// Carries out `request` in this process. Only the sandbox process calls this outside tests.
pub fn execute(request: Request) -> Response {
    let mut budget = Budget {
        left: MAX_OUTPUT,
        exceeded: false,
    };
    match request {
        Request::Render { source, context } => match render(&source, &context, &mut budget) {
            Ok(text) => Response::Text(text),
            Err(e) => Response::Failed(e),
        },
        Request::Eval { source, context } => match eval(&source, &context, &mut budget) {
            Ok(value) => Response::Value(value),
            Err(e) => Response::Failed(e),
        },
        Request::IsTrue { source, context } => match evaluate(&source, &context) {
            Ok(value) => Response::Bool(value.is_true()),
            Err(e) => Response::Failed(e),
        },
        Request::RenderValue { value, context } => {
            match render_value(&value, &context, &mut budget) {
                Ok(value) => Response::Value(value),
                Err(e) => Response::Failed(e),
            }
        }
        Request::Check { sources } => Response::Checked(
            sources
                .iter()
                .map(|source| match source {
                    Source::Template(s) => check_template(s).err(),
                    Source::Expression(s) => check_expression(s).err(),
                })
                .collect(),
        ),
    }
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION);
    env
}

fn describe(e: &minijinja::Error) -> String {
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!("it runs more than {FUEL} steps (the {LIMIT_MARK} on work)");
    }
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

fn too_long() -> String {
    format!(
        "it gives more than {} KiB (the {LIMIT_MARK} on output)",
        MAX_OUTPUT / 1024
    )
}

/// What is left of a request's output allowance; a writer that refuses more.
struct Budget {
    left: usize,
    exceeded: bool,
}

struct Capped<'b> {
    out: Vec<u8>,
    budget: &'b mut Budget,
}

impl Write for Capped<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if bytes.len() > self.budget.left {
            self.budget.exceeded = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.budget.left -= bytes.len();
        self.out.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn check_template(source: &str) -> Result<(), String> {
    env()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| format!("is not a valid template ({})", describe(&e)))
}

fn check_expression(source: &str) -> Result<(), String> {
    env()
        .compile_expression(source)
        .map(|_| ())
        .map_err(|e| format!("is not a valid expression ({})", describe(&e)))
}

fn render(source: &str, context: &Value, budget: &mut Budget) -> Result<String, String> {
    let cannot = |detail: String| format!("{source:?} cannot be rendered: {detail}");
    let env = env();
    let template = env
        .template_from_str(source)
        .map_err(|e| cannot(describe(&e)))?;
    let mut out = Capped {
        out: Vec::new(),
        budget,
    };
    match template.render_captured_to(context, &mut out) {
        Ok(_) => String::from_utf8(out.out).map_err(|_| cannot("not UTF-8".into())),
        Err(_) if out.budget.exceeded => Err(cannot(too_long())),
        Err(e) => Err(cannot(describe(&e))),
    }
}

fn evaluate(source: &str, context: &Value) -> Result<minijinja::Value, String> {
    let env = env();
    let expression = env
        .compile_expression(source)
        .map_err(|e| format!("{source:?} is not a valid expression: {}", describe(&e)))?;
    expression
        .eval(context)
        .map_err(|e| format!("{source:?} cannot be evaluated: {}", describe(&e)))
}

fn eval(source: &str, context: &Value, budget: &mut Budget) -> Result<Value, String> {
    let value = evaluate(source, context)?;
    if value.is_undefined() {
        return Err(format!("{source:?} is undefined"));
    }
    let mut out = Capped {
        out: Vec::new(),
        budget,
    };
    match serde_json::to_writer(&mut out, &value) {
        Ok(()) => serde_json::from_slice(&out.out)
            .map_err(|e| format!("{source:?} gives no JSON value: {e}")),
        Err(_) if out.budget.exceeded => {
            Err(format!("{source:?} cannot be evaluated: {}", too_long()))
        }
        Err(e) => Err(format!("{source:?} gives no JSON value: {e}")),
    }
}

/// A template that is one `{{ expression }}` and nothing else: its value keeps its type.
fn sole_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

fn render_value(value: &Value, context: &Value, budget: &mut Budget) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => match sole_expression(s) {
            Some(expression) => eval(expression, context, budget)?,
            None => Value::String(render(s, context, budget)?),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, context, budget))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context, budget)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(source: &str, context: Value) -> Response {
        execute(Request::Render {
            source: source.into(),
            context,
        })
    }

    #[test]
    fn missing_values_are_errors_not_empty_strings() {
        let context = json!({"trigger": {"customer_name": "Ada"}});
        assert_eq!(
            rendered("Hi {{ trigger.customer_name }}", context.clone()),
            Response::Text("Hi Ada".into())
        );
        assert!(matches!(
            rendered("Hi {{ trigger.nickname }}", context.clone()),
            Response::Failed(_)
        ));
        assert_eq!(
            rendered("Hi {{ trigger.nickname | default('there') }}", context),
            Response::Text("Hi there".into())
        );
    }

    #[test]
    fn a_sole_expression_keeps_its_type() {
        let context = json!({"steps": {"fetch": {"body": {"items": [1, 2]}}}, "n": 3});
        let value = json!({"list": "{{ steps.fetch.body.items }}", "text": "n={{ n }}"});
        assert_eq!(
            execute(Request::RenderValue {
                value,
                context: context.clone()
            }),
            Response::Value(json!({"list": [1, 2], "text": "n=3"}))
        );
        let condition = "n > 2 and steps.fetch.body.items | length == 2";
        assert_eq!(
            execute(Request::IsTrue {
                source: condition.into(),
                context
            }),
            Response::Bool(true)
        );
    }

    #[test]
    fn unbounded_work_stops_at_the_fuel_limit() {
        let hostile =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let Response::Failed(message) = rendered(hostile, json!({})) else {
            panic!("the nested loops ran to the end");
        };
        assert!(message.contains("limit on work"), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(
            execute(Request::Render {
                source: hostile.into(),
                context: json!({}),
            })
            .hit_a_limit()
        );
    }

    #[test]
    fn output_stops_at_its_limit() {
        let big = "{% for i in range(8) %}{{ 'x' * 1000000 }}{% endfor %}";
        let Response::Failed(message) = rendered(big, json!({})) else {
            panic!("8 MB rendered");
        };
        assert!(message.contains("limit on output"), "{message}");
        let value = execute(Request::Eval {
            source: "'x' * 2000000".into(),
            context: json!({}),
        });
        assert!(value.hit_a_limit(), "{value:?}");
        // The limit is per request, not per string.
        let many = json!(["{{ 'x' * 600000 }}", "{{ 'y' * 600000 }}"]);
        let value = execute(Request::RenderValue {
            value: many,
            context: json!({}),
        });
        assert!(value.hit_a_limit(), "{value:?}");
    }

    #[test]
    fn sources_are_checked_one_by_one() {
        let checked = execute(Request::Check {
            sources: vec![
                Source::Template("Hi {{ name }}".into()),
                Source::Template("Hi {{ name".into()),
                Source::Expression("a ==".into()),
            ],
        });
        let Response::Checked(answers) = checked else {
            panic!("{checked:?}");
        };
        assert_eq!(answers[0], None);
        assert!(
            answers[1]
                .as_deref()
                .unwrap()
                .contains("not a valid template")
        );
        assert!(
            answers[2]
                .as_deref()
                .unwrap()
                .contains("not a valid expression")
        );
    }
}
