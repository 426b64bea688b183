//! The post-conversation evaluation: which variables to extract (`status` and `summary`, then
//! the assistant's own fields), the JSON schema a model must answer in, and checking its answer.

use serde_json::{Map, Value, json};
use waflow_entities::{
    assistant,
    enums::{AssistantProvider, ExtractionType},
};

use super::{ChatMessage, ChatRole, chat::ChatClient, prompt, scripted};
use crate::{
    Services,
    assistants::{ExtractionField, extraction_fields},
    error::{Error, Result},
};

/// The fields every evaluation extracts unless the assistant defines them itself.
fn default_fields() -> [ExtractionField; 2] {
    [
        ExtractionField {
            name: "status".into(),
            r#type: ExtractionType::Boolean,
            description: Some(
                "Whether the conversation reached the goal the assistant's instructions set".into(),
            ),
            options: vec![],
            pattern: None,
        },
        ExtractionField {
            name: "summary".into(),
            r#type: ExtractionType::String,
            description: Some("A short summary of the conversation".into()),
            options: vec![],
            pattern: None,
        },
    ]
}

/// `status` and `summary` (unless the assistant redefines them), then the assistant's fields.
pub fn fields(a: &assistant::Model) -> Vec<ExtractionField> {
    let own = extraction_fields(a);
    let mut all: Vec<ExtractionField> = default_fields()
        .into_iter()
        .filter(|d| own.iter().all(|f| f.name != d.name))
        .collect();
    all.extend(own);
    all
}

fn field_schema(field: &ExtractionField) -> Value {
    let mut schema = match field.r#type {
        ExtractionType::String => json!({"type": ["string", "null"]}),
        ExtractionType::Number => json!({"type": ["number", "null"]}),
        ExtractionType::Boolean => json!({"type": ["boolean", "null"]}),
        ExtractionType::Enum => {
            let mut options: Vec<Value> = field.options.iter().map(|o| json!(o)).collect();
            options.push(Value::Null);
            json!({"type": ["string", "null"], "enum": options})
        }
    };
    if let Some(description) = &field.description {
        schema["description"] = json!(description);
    }
    schema
}

/// The `response_format` of the extraction request: a strict JSON schema with every field
/// required and nullable (null: not found in the conversation).
pub fn response_format(fields: &[ExtractionField]) -> Value {
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.clone(), field_schema(f)))
        .collect();
    let required: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "conversation_evaluation",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            }
        }
    })
}

/// Checks a model's answer against the fields: a JSON object whose every field is null or of its
/// type (an ENUM one of its options). Missing fields count as null; unknown keys are dropped.
pub fn check_answer(
    fields: &[ExtractionField],
    answer: &str,
) -> Result<Map<String, Value>, String> {
    let trimmed = answer.trim();
    // Some models wrap JSON in a Markdown fence even when asked not to.
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .unwrap_or(trimmed);
    let Value::Object(mut object) =
        serde_json::from_str::<Value>(unfenced).map_err(|e| format!("not JSON: {e}"))?
    else {
        return Err("not a JSON object".into());
    };
    let mut checked = Map::new();
    for field in fields {
        let value = object.remove(&field.name).unwrap_or(Value::Null);
        let fits = match (&value, field.r#type) {
            (Value::Null, _) => true,
            (Value::String(_), ExtractionType::String) => true,
            (Value::Number(_), ExtractionType::Number) => true,
            (Value::Bool(_), ExtractionType::Boolean) => true,
            (Value::String(s), ExtractionType::Enum) => field.options.contains(s),
            _ => false,
        };
        if !fits {
            return Err(format!(
                "{} is not a valid {:?}: {value}",
                field.name, field.r#type
            ));
        }
        checked.insert(field.name.clone(), value);
    }
    Ok(checked)
}

fn instructions(system_prompt: &str, fields: &[ExtractionField]) -> String {
    let mut text = String::from(
        "You evaluate a finished customer conversation. Answer with one JSON object only, \
         with exactly these keys (null when the conversation does not tell):\n",
    );
    for f in fields {
        let kind = match f.r#type {
            ExtractionType::Enum => format!("one of {:?}", f.options),
            other => format!("{other:?}").to_lowercase(),
        };
        let about = f.description.as_deref().unwrap_or("");
        text.push_str(&format!("- {} ({kind}): {about}\n", f.name));
    }
    if !system_prompt.trim().is_empty() {
        text.push_str("\nThe assistant in the conversation was instructed:\n");
        text.push_str(system_prompt);
    }
    text
}

/// Asks the assistant's model for the fields (or, SCRIPTED, applies their patterns) over the
/// transcript. An answer that is not valid is asked for once more before giving up.
pub async fn evaluate(
    services: &Services,
    assistant: &assistant::Model,
    variables: &Value,
    transcript_text: &str,
) -> Result<Map<String, Value>> {
    let fields = fields(assistant);
    if assistant.provider == AssistantProvider::Scripted {
        return Ok(scripted::extract(&fields, transcript_text));
    }
    let templates = services.sandbox.for_workspace(assistant.workspace_id);
    let system =
        prompt::render_system_prompt(&templates, &assistant.system_prompt, variables).await?;
    let mut messages = vec![
        ChatMessage::new(ChatRole::System, instructions(&system, &fields)),
        ChatMessage::new(
            ChatRole::User,
            format!("The conversation:\n{transcript_text}"),
        ),
    ];
    let format = response_format(&fields);
    let client = ChatClient::for_assistant(services, assistant)?;
    let mut problem = String::new();
    for attempt in 0..2 {
        let answer = client.complete(&messages, Some(&format)).await?;
        match check_answer(&fields, &answer) {
            Ok(values) => return Ok(values),
            Err(why) if attempt == 0 => {
                tracing::info!(%why, "the model's evaluation is not valid; asking again");
                messages.push(ChatMessage::new(ChatRole::Assistant, answer));
                messages.push(ChatMessage::new(
                    ChatRole::User,
                    format!(
                        "That answer is not valid ({why}). Answer again with the JSON object only."
                    ),
                ));
                problem = why;
            }
            Err(why) => problem = why,
        }
    }
    Err(Error::provider(
        None,
        format!("the model's evaluation is not valid JSON for the fields: {problem}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, r#type: ExtractionType, options: &[&str]) -> ExtractionField {
        ExtractionField {
            name: name.into(),
            r#type,
            description: None,
            options: options.iter().map(|o| o.to_string()).collect(),
            pattern: None,
        }
    }

    #[test]
    fn answers_are_checked_against_the_fields() {
        let fields = [
            field("status", ExtractionType::Boolean, &[]),
            field("plan", ExtractionType::Enum, &["basic", "pro"]),
            field("seats", ExtractionType::Number, &[]),
        ];
        let ok = check_answer(
            &fields,
            "```json\n{\"status\": true, \"plan\": \"pro\", \"extra\": 1}\n```",
        )
        .unwrap();
        assert_eq!(
            Value::Object(ok),
            json!({"status": true, "plan": "pro", "seats": null})
        );
        assert!(check_answer(&fields, "{\"status\": \"yes\"}").is_err());
        assert!(check_answer(&fields, "{\"plan\": \"gold\"}").is_err());
        assert!(check_answer(&fields, "Sure! Here it is").is_err());
        assert!(check_answer(&fields, "[1]").is_err());
    }

    #[test]
    fn schema_requires_every_field_and_allows_null() {
        let format = response_format(&[field("plan", ExtractionType::Enum, &["basic"])]);
        let schema = &format["json_schema"]["schema"];
        assert_eq!(schema["required"], json!(["plan"]));
        assert_eq!(schema["properties"]["plan"]["enum"], json!(["basic", null]));
        assert_eq!(schema["additionalProperties"], json!(false));
    }
}
