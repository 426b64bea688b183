//! The steps with side effects, each through the same service its GraphQL mutation uses, so a
//! flow obeys every rule a direct call does. A send carries an idempotency key of the run, step,
//! iteration and attempt: a job re-run after a crash finds the message instead of sending again.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{definition::TemplateVariables, limits::HOP_HEADER};
use crate::{
    Error, Services,
    content::{rich_content::MessageContent, template_parameters::TemplateParameters},
    egress,
    messaging::ai_replies::GenerateAiReply,
    messaging::{SendMessage, SendTemplate, SendText, TemplateRef},
    sandbox::{TemplateError, Templates},
};
use waflow_entities::{enums::MessageStatus, message};

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

/// Where a step runs: its services, workspace, template context and idempotency key.
pub struct StepContext<'a> {
    pub services: &'a Services,
    pub workspace_id: Uuid,
    pub context: &'a Value,
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

/// A `send_template` step's fields, as written (templates over the run's context).
pub struct TemplateStep<'a> {
    pub sender_id: Uuid,
    pub template: &'a str,
    pub language: &'a str,
    pub to: &'a str,
    pub variables: &'a TemplateVariables,
    pub recipient_name: Option<&'a String>,
}

/// Renders every field of the step, the header's and buttons' parameters included, and sends.
pub async fn send_template(
    cx: &StepContext<'_>,
    step: TemplateStep<'_>,
    mut parameters: TemplateParameters,
) -> StepResult {
    let TemplateStep {
        sender_id,
        template,
        language,
        to,
        variables,
        recipient_name,
    } = step;
    for (at, value) in parameters.strings_mut() {
        *value = cx.render(&at, value).await?;
    }
    let mut positional = Vec::new();
    let mut named = BTreeMap::new();
    match variables {
        TemplateVariables::Positional(list) => {
            for (i, v) in list.iter().enumerate() {
                positional.push(cx.render(&format!("variables[{i}]"), v).await?);
            }
        }
        TemplateVariables::Named(map) => {
            for (k, v) in map {
                named.insert(k.clone(), cx.render(&format!("variables.{k}"), v).await?);
            }
        }
    }
    let recipient_name = match recipient_name {
        Some(n) => Some(cx.render("recipientName", n).await?),
        None => None,
    };
    let input = SendTemplate {
        sender_id,
        template: TemplateRef::Name {
            name: template.to_owned(),
            language: language.to_owned(),
        },
        to: cx.render("to", to).await?,
        recipient_name,
        variables: positional,
        named_variables: named,
        parameters,
        idempotency_key: Some(cx.idempotency_key.clone()),
    };
    let sent = cx
        .services
        .messaging()
        .send_template(cx.workspace_id, input)
        .await?;
    message_output(&sent)
}

pub async fn send_text(cx: &StepContext<'_>, sender_id: Uuid, to: &str, text: &str) -> StepResult {
    let input = SendText {
        reply_to: None,
        sender_id,
        to: cx.render("to", to).await?,
        text: cx.render("text", text).await?,
        idempotency_key: Some(cx.idempotency_key.clone()),
    };
    let sent = cx
        .services
        .messaging()
        .send_text(cx.workspace_id, input)
        .await?;
    message_output(&sent)
}

/// Renders the content's strings (a lone `{{ … }}` keeps its type, so a latitude can come
/// from the trigger) and sends it. Content that is not one of `sendMessage`'s kinds once
/// rendered fails the step for good.
pub async fn send_message(
    cx: &StepContext<'_>,
    sender_id: Uuid,
    to: &str,
    content: &Value,
    reply_to: Option<&str>,
) -> StepResult {
    let rendered = cx.render_value("content", content).await?;
    let content: MessageContent = serde_json::from_value(rendered).map_err(|e| {
        StepError::permanent(format!("VALIDATION_FAILED: content is not a message: {e}"))
    })?;
    let reply_to = match reply_to {
        Some(source) => {
            let id = cx.render("replyTo", source).await?;
            Some(Uuid::parse_str(id.trim()).map_err(|_| {
                StepError::permanent(format!(
                    "VALIDATION_FAILED: replyTo: {id:?} is not a message id"
                ))
            })?)
        }
        None => None,
    };
    let input = SendMessage {
        sender_id,
        to: cx.render("to", to).await?,
        content,
        reply_to,
        idempotency_key: Some(cx.idempotency_key.clone()),
    };
    let sent = cx
        .services
        .messaging()
        .send_message(cx.workspace_id, input)
        .await?;
    message_output(&sent)
}

pub async fn generate_ai_reply(
    cx: &StepContext<'_>,
    assistant_id: Uuid,
    customer_identifier: &str,
    message: &str,
    variables: &Map<String, Value>,
) -> StepResult {
    let input = GenerateAiReply {
        assistant_id,
        customer_identifier: cx.render("customerIdentifier", customer_identifier).await?,
        message: cx.render("message", message).await?,
        variables: Some(
            cx.render_value("variables", &Value::Object(variables.clone()))
                .await?,
        ),
    };
    let answer = cx
        .services
        .ai_replies()
        .generate(cx.workspace_id, input)
        .await?;
    Ok(json!({
        "reply": answer.reply,
        "conversation_id": answer.conversation.id,
        "message_id": answer.reply_message.map(|m| m.id),
        "ai_disabled": answer.ai_disabled,
    }))
}

/// The longest response body a step keeps, so one large answer cannot bloat a run's state.
const MAX_BODY_BYTES: usize = 200 * 1024;

pub async fn http_request(
    cx: &StepContext<'_>,
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&Value>,
    timeout: Duration,
) -> StepResult {
    let url = cx.render("url", url).await?;
    let mut rendered_headers = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let value = cx.render(&format!("headers.{name}"), value).await?;
        rendered_headers.push((name.clone(), value));
    }
    let body = match body {
        Some(body) => Some(cx.render_value("body", body).await?),
        None => None,
    };
    let call = Call {
        method,
        url: &url,
        headers: &rendered_headers,
        body: body.as_ref(),
        timeout,
        hop: cx.hop,
    };
    exchange(cx.services, call).await
}

/// One request of an http_request step, rendered.
pub struct Call<'c> {
    pub method: &'c str,
    pub url: &'c str,
    pub headers: &'c [(String, String)],
    pub body: Option<&'c Value>,
    pub timeout: Duration,
    /// The calling run's place in a chain; the request carries one more.
    pub hop: u32,
}

/// One request of an http_request step (or of its dry run), through the egress policy, and
/// its answer, of which at most `MAX_BODY_BYTES` are read.
pub async fn exchange(services: &Services, call: Call<'_>) -> StepResult {
    let Call {
        method,
        url,
        headers,
        body,
        timeout,
        hop,
    } = call;
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
        .map_err(|_| StepError::permanent(format!("method {method:?} is not an HTTP method")))?;
    let mut request = services
        .egress
        .request(method, url)
        .map_err(|refused| StepError::permanent(format!("HTTP_ERROR: {refused}")))?
        .timeout(timeout);
    // The chain's length is ours to say: a step cannot reset it.
    for (name, value) in headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(HOP_HEADER))
    {
        request = request.header(name, value);
    }
    request = request.header(HOP_HEADER, (hop + 1).to_string());
    if let Some(body) = body {
        request = request.json(body);
    }
    let unreachable = |e: reqwest::Error| {
        StepError::transient(if e.is_timeout() {
            format!(
                "HTTP_ERROR: {url} did not answer within {} s",
                timeout.as_secs()
            )
        } else {
            format!("HTTP_ERROR: cannot reach {url}: {}", egress::describe(&e))
        })
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let response_headers: Map<String, Value> = response
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str().to_owned(),
                Value::String(v.to_str().ok()?.to_owned()),
            ))
        })
        .collect();
    let (bytes, truncated) = egress::read_capped(response, MAX_BODY_BYTES)
        .await
        .map_err(unreachable)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        return Err(StepError {
            message: format!("HTTP_ERROR: {url} answered {status}"),
            // A server error may pass; a client error will not, nor a loop (508: a chain of
            // flows calling webhooks that Waflow stopped).
            retryable: (status.is_server_error() && status.as_u16() != 508)
                || status.as_u16() == 429,
            retry_after: None,
        });
    }
    Ok(
        json!({"status": status.as_u16(), "headers": response_headers, "body": body,
        "truncated": truncated}),
    )
}

pub async fn end_conversation(cx: &StepContext<'_>, conversation_id: &str) -> StepResult {
    let rendered = cx.render("conversationId", conversation_id).await?;
    let id = Uuid::parse_str(rendered.trim())
        .map_err(|_| StepError::permanent(format!("conversationId: {rendered:?} is not an id")))?;
    match cx
        .services
        .messaging()
        .end_conversation(cx.workspace_id, id)
        .await
    {
        Ok(_) => Ok(json!({"conversation_id": id, "already_ended": false})),
        // Ending what has ended is what the step wants.
        Err(Error::Validation(_)) => Ok(json!({"conversation_id": id, "already_ended": true})),
        Err(e) => Err(e.into()),
    }
}
