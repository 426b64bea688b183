//! The offline assistant: regex rules answer, regex patterns extract. It needs no network, so the
//! embedded default can demo assistants and tests can rely on exact answers.

use regex::Regex;
use serde_json::{Map, Value};
use waflow_entities::enums::ExtractionType;

use super::prompt;
use crate::{
    assistants::{ExtractionField, ScriptedRule},
    error::{Error, Result},
    sandbox::Templates,
};

fn compile(field: &str, pattern: &str) -> Result<Regex> {
    Regex::new(pattern).map_err(|e| Error::field(field, format!("is not a valid regex: {e}")))
}

/// The reply of the first rule whose pattern matches `message`, rendered with the conversation's
/// variables, `message`, `captures` (by number, 0 being the whole match) and `groups` (named
/// captures); else the fallback reply; else `None`.
pub async fn reply(
    templates: &Templates<'_>,
    rules: &[ScriptedRule],
    fallback: Option<&str>,
    message: &str,
    variables: &Value,
) -> Result<Option<String>> {
    let mut context = match variables {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    context.insert("message".into(), Value::String(message.to_owned()));
    for (i, rule) in rules.iter().enumerate() {
        let regex = compile(&format!("scriptedRules[{i}].pattern"), &rule.pattern)?;
        let Some(found) = regex.captures(message) else {
            continue;
        };
        let captures: Vec<Value> = found
            .iter()
            .map(|m| m.map_or(Value::Null, |m| Value::String(m.as_str().to_owned())))
            .collect();
        let groups: Map<String, Value> = regex
            .capture_names()
            .flatten()
            .filter_map(|name| {
                let value = found.name(name)?.as_str().to_owned();
                Some((name.to_owned(), Value::String(value)))
            })
            .collect();
        context.insert("captures".into(), Value::Array(captures));
        context.insert("groups".into(), Value::Object(groups));
        let field = format!("scriptedRules[{i}].reply");
        let context = Value::Object(context);
        return prompt::render(templates, &field, &rule.reply, &context)
            .await
            .map(Some);
    }
    match fallback {
        Some(template) => {
            let context = Value::Object(context);
            prompt::render(templates, "fallbackReply", template, &context)
                .await
                .map(Some)
        }
        None => Ok(None),
    }
}

/// Each field's value found by its pattern in `transcript`: the first capture group (or the
/// whole match) converted to the field's type. BOOLEAN fields are whether the pattern matched;
/// a field without a pattern, or whose match does not convert, is null.
pub fn extract(fields: &[ExtractionField], transcript: &str) -> Map<String, Value> {
    fields
        .iter()
        .map(|field| (field.name.clone(), extract_one(field, transcript)))
        .collect()
}

fn extract_one(field: &ExtractionField, transcript: &str) -> Value {
    let Some(regex) = field.pattern.as_deref().and_then(|p| Regex::new(p).ok()) else {
        return Value::Null;
    };
    let found = regex.captures(transcript);
    if field.r#type == ExtractionType::Boolean {
        return Value::Bool(found.is_some());
    }
    let Some(found) = found else {
        return Value::Null;
    };
    let text = found
        .get(1)
        .or_else(|| found.get(0))
        .map_or("", |m| m.as_str())
        .trim();
    match field.r#type {
        ExtractionType::String => Value::String(text.to_owned()),
        ExtractionType::Number => text
            .replace(',', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        ExtractionType::Enum => field
            .options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(text))
            .map_or(Value::Null, |o| Value::String(o.clone())),
        ExtractionType::Boolean => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(pattern: &str, reply: &str) -> ScriptedRule {
        ScriptedRule {
            pattern: pattern.into(),
            reply: reply.into(),
        }
    }

    #[tokio::test]
    async fn first_matching_rule_answers_with_captures_and_variables() {
        let sandbox = crate::sandbox::Sandbox::in_process();
        let templates = sandbox.for_workspace(uuid::Uuid::nil());
        let rules = [
            rule(
                r"(?i)order (?P<number>\d+)",
                "{{ customer_name }}, order {{ groups.number }} ships today.",
            ),
            rule(r"(?i)order", "Which order?"),
            rule(r"(?i)price of (\w+)", "{{ captures[1] }} costs 10 EUR."),
        ];
        let vars = json!({"customer_name": "Ada"});
        let fallback = Some("Sorry, {{ message }}?");
        let answer = async |m: &str| {
            reply(&templates, &rules, fallback, m, &vars)
                .await
                .unwrap()
                .unwrap()
        };
        assert_eq!(
            answer("Where is order 42?").await,
            "Ada, order 42 ships today."
        );
        assert_eq!(answer("my ORDER").await, "Which order?");
        assert_eq!(answer("price of tea").await, "tea costs 10 EUR.");
        assert_eq!(answer("hello").await, "Sorry, hello?");
        let none = reply(&templates, &rules, None, "hello", &vars).await;
        assert_eq!(none.unwrap(), None);
    }

    #[test]
    fn extraction_converts_to_each_type() {
        let field = |name: &str, r#type, pattern: Option<&str>, options: &[&str]| ExtractionField {
            name: name.into(),
            r#type,
            description: None,
            options: options.iter().map(|o| o.to_string()).collect(),
            pattern: pattern.map(str::to_owned),
        };
        let fields = [
            field("email", ExtractionType::String, Some(r"[\w.]+@[\w.]+"), &[]),
            field(
                "budget",
                ExtractionType::Number,
                Some(r"budget is ([\d,]+)"),
                &[],
            ),
            field(
                "wants_demo",
                ExtractionType::Boolean,
                Some(r"(?i)\bdemo\b"),
                &[],
            ),
            field(
                "plan",
                ExtractionType::Enum,
                Some(r"(?i)plan: (\w+)"),
                &["Basic", "Pro"],
            ),
            field("missing", ExtractionType::String, Some(r"zzz(\d)"), &[]),
            field("summary", ExtractionType::String, None, &[]),
        ];
        let transcript = "Customer: I am ada@example.com, budget is 1,500.\nCustomer: plan: pro";
        assert_eq!(
            Value::Object(extract(&fields, transcript)),
            json!({"email": "ada@example.com", "budget": 1500.0, "wants_demo": false,
                   "plan": "Pro", "missing": null, "summary": null})
        );
    }
}
