//! Values and conditions in flows are minijinja: `{{ trigger.customer_name }}` in a template,
//! `trigger.message | lower == 'yes'` as an expression. Undefined values are errors (strict), so a
//! missing variable fails its step instead of sending a customer an empty string.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Whether `source` is a valid template.
pub fn check_template(source: &str) -> Result<(), String> {
    env()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| format!("is not a valid template ({})", describe(&e)))
}

/// Whether `source` is a valid expression.
pub fn check_expression(source: &str) -> Result<(), String> {
    env()
        .compile_expression(source)
        .map(|_| ())
        .map_err(|e| format!("is not a valid expression ({})", describe(&e)))
}

pub fn render(source: &str, context: &Value) -> Result<String, String> {
    env()
        .render_str(source, context)
        .map_err(|e| format!("{source:?} cannot be rendered: {}", describe(&e)))
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

pub fn eval(source: &str, context: &Value) -> Result<Value, String> {
    let value = evaluate(source, context)?;
    if value.is_undefined() {
        return Err(format!("{source:?} is undefined"));
    }
    serde_json::to_value(&value).map_err(|e| format!("{source:?} gives no JSON value: {e}"))
}

pub fn is_true(source: &str, context: &Value) -> Result<bool, String> {
    Ok(evaluate(source, context)?.is_true())
}

/// A template that is one `{{ expression }}` and nothing else: its value keeps its type.
fn sole_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

/// Renders every string in `value` as a template; a string that is a single `{{ … }}` keeps the
/// type of what it gives (a list, a number).
pub fn render_value(value: &Value, context: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => match sole_expression(s) {
            Some(expression) => eval(expression, context)?,
            None => Value::String(render(s, context)?),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Checks every string in `value` as a template.
pub fn check_value(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => check_template(s),
        Value::Array(items) => items.iter().try_for_each(check_value),
        Value::Object(map) => map.values().try_for_each(check_value),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_values_are_errors_not_empty_strings() {
        let context = json!({"trigger": {"customer_name": "Ada"}});
        assert_eq!(
            render("Hi {{ trigger.customer_name }}", &context).unwrap(),
            "Hi Ada"
        );
        assert!(render("Hi {{ trigger.nickname }}", &context).is_err());
        assert!(eval("trigger.nickname", &context).is_err());
    }

    #[test]
    fn a_sole_expression_keeps_its_type() {
        let context = json!({"steps": {"fetch": {"body": {"items": [1, 2]}}}, "n": 3});
        assert_eq!(
            render_value(
                &json!({"list": "{{ steps.fetch.body.items }}", "text": "n={{ n }}"}),
                &context
            )
            .unwrap(),
            json!({"list": [1, 2], "text": "n=3"})
        );
        assert!(is_true("n > 2 and steps.fetch.body.items | length == 2", &context).unwrap());
    }
}
