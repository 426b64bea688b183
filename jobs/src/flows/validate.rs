//! The checks a definition needs beyond its shape: every template and expression compiles, and
//! every sender, template and assistant it names exists in the workspace (a template approved).

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use waflow_entities::{assistant, enums::TemplateStatus, sender, template};

use super::definition::{self, Action, Definition, Leaf, Step, TemplateVariables, Trigger};
use crate::{
    Services, content::template_parameters::TemplateParameters, error::Result,
    sandbox::SourceChecks, validation::Problems,
};

const HTTP_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// The longest a delay or a wait for a reply may be: 30 days.
pub const MAX_WAIT_SECONDS: u64 = 30 * 86_400;

/// Parses and checks a definition against the workspace; VALIDATION_FAILED lists every problem.
pub async fn validate(
    services: &Services,
    workspace_id: Uuid,
    value: &serde_json::Value,
) -> Result<Definition> {
    let definition = match definition::parse(value) {
        Ok(definition) => definition,
        Err(problems) => return problems.into_result().map(|_| unreachable!()),
    };
    let mut problems = Problems::new();
    let mut sources = SourceChecks::default();
    check_trigger(&definition.trigger, &mut problems);
    if let Some(key) = &definition.concurrency_key {
        sources.template("concurrencyKey", key);
    }
    let mut references = Vec::new();
    definition::walk(&definition.steps, "steps", &mut |step, path| {
        check_step(step, path, &mut problems, &mut sources, &mut references);
        // A URL written out (no template in it) is held to the egress policy now; a rendered
        // one is when the request is made.
        if let Action::Leaf(Leaf::HttpRequest { url, .. }) = &step.action
            && !url.contains("{{")
            && !url.contains("{%")
        {
            problems.outgoing_url(&services.egress, &format!("{path}.url"), url);
        }
    });
    let templates = services.sandbox.for_workspace(workspace_id);
    for (field, problem) in sources.run(&templates).await? {
        problems.add(field, problem);
    }
    if let Some(sender_id) = definition.trigger.sender_id() {
        references.push(Reference::Sender {
            path: "trigger.senderId".into(),
            id: sender_id,
        });
    }
    check_references(services, workspace_id, references, &mut problems).await?;
    problems.into_result()?;
    Ok(definition)
}

fn check_trigger(trigger: &Trigger, problems: &mut Problems) {
    match trigger {
        Trigger::MessageReceived {
            matcher: Some(m), ..
        } => {
            if let Some(r) = &m.regex
                && let Err(e) = regex::Regex::new(r)
            {
                problems.add("trigger.match.regex", format!("is not a valid regex: {e}"));
            }
        }
        Trigger::Schedule { cron, timezone } => {
            if let Err(e) = super::schedule::Schedule::parse(cron, timezone.as_deref()) {
                problems.add("trigger", e);
            }
        }
        Trigger::Event { name } => problems.text("trigger.name", name, 200),
        _ => {}
    }
}

/// Something a step names that must exist in the workspace.
enum Reference {
    Sender {
        path: String,
        id: Uuid,
    },
    Template {
        path: String,
        sender: Uuid,
        name: String,
        language: String,
    },
    Assistant {
        path: String,
        id: Uuid,
    },
}

fn templates_in(sources: &mut SourceChecks, path: &str, fields: &[(&str, Option<&String>)]) {
    for (name, value) in fields {
        if let Some(value) = value {
            sources.template(format!("{path}.{name}"), value);
        }
    }
}

fn check_step(
    step: &Step,
    path: &str,
    problems: &mut Problems,
    sources: &mut SourceChecks,
    refs: &mut Vec<Reference>,
) {
    match &step.action {
        Action::Branch { branches, .. } => {
            for (i, branch) in branches.iter().enumerate() {
                sources.expression(format!("{path}.branches[{i}].when"), &branch.when);
            }
        }
        Action::Loop { items, .. } => sources.expression(format!("{path}.items"), items),
        Action::Leaf(leaf) => check_leaf(leaf, path, problems, sources, refs),
    }
}

fn check_leaf(
    leaf: &Leaf,
    path: &str,
    problems: &mut Problems,
    sources: &mut SourceChecks,
    refs: &mut Vec<Reference>,
) {
    match leaf {
        Leaf::SendTemplate {
            sender_id,
            template,
            language,
            to,
            variables,
            recipient_name,
            header,
            buttons,
        } => {
            templates_in(
                sources,
                path,
                &[("to", Some(to)), ("recipientName", recipient_name.as_ref())],
            );
            let mut parameters = TemplateParameters {
                header: header.clone(),
                buttons: buttons.clone(),
            };
            for (at, value) in parameters.strings_mut() {
                sources.template(format!("{path}.{at}"), value);
            }
            let values: Vec<(String, &String)> = match variables {
                TemplateVariables::Positional(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("variables[{i}]"), v))
                    .collect(),
                TemplateVariables::Named(map) => map
                    .iter()
                    .map(|(k, v)| (format!("variables.{k}"), v))
                    .collect(),
            };
            for (at, value) in values {
                sources.template(format!("{path}.{at}"), value);
            }
            refs.push(Reference::Sender {
                path: format!("{path}.senderId"),
                id: *sender_id,
            });
            refs.push(Reference::Template {
                path: format!("{path}.template"),
                sender: *sender_id,
                name: template.clone(),
                language: language.clone(),
            });
        }
        Leaf::SendText {
            sender_id,
            to,
            text,
        } => {
            templates_in(sources, path, &[("to", Some(to)), ("text", Some(text))]);
            refs.push(Reference::Sender {
                path: format!("{path}.senderId"),
                id: *sender_id,
            });
        }
        Leaf::SendMessage {
            sender_id,
            to,
            content,
            reply_to,
        } => {
            templates_in(
                sources,
                path,
                &[("to", Some(to)), ("replyTo", reply_to.as_ref())],
            );
            sources.value(&format!("{path}.content"), content);
            let kinds = [
                "image", "video", "audio", "document", "sticker", "location", "buttons", "list",
                "reaction",
            ];
            let one_kind = content
                .as_object()
                .is_some_and(|o| o.len() == 1 && o.keys().all(|k| kinds.contains(&k.as_str())));
            problems.check(
                one_kind,
                format!("{path}.content"),
                format!(
                    "must be one of {}: {{\"image\": {{\"link\": \"…\"}}}}",
                    kinds.join(", ")
                ),
            );
            refs.push(Reference::Sender {
                path: format!("{path}.senderId"),
                id: *sender_id,
            });
        }
        Leaf::GenerateAiReply {
            assistant_id,
            customer_identifier,
            message,
            variables,
        } => {
            templates_in(
                sources,
                path,
                &[
                    ("customerIdentifier", Some(customer_identifier)),
                    ("message", Some(message)),
                ],
            );
            let variables = serde_json::Value::Object(variables.clone());
            sources.value(&format!("{path}.variables"), &variables);
            refs.push(Reference::Assistant {
                path: format!("{path}.assistantId"),
                id: *assistant_id,
            });
        }
        Leaf::Delay { seconds, until } => {
            match (seconds, until) {
                (Some(_), Some(_)) | (None, None) => {
                    problems.add(path, "a delay takes either seconds or until")
                }
                (Some(s), None) => problems.check(
                    (1..=MAX_WAIT_SECONDS).contains(s),
                    format!("{path}.seconds"),
                    format!("must be 1 to {MAX_WAIT_SECONDS}"),
                ),
                (None, Some(_)) => {}
            }
            templates_in(sources, path, &[("until", until.as_ref())]);
        }
        Leaf::HttpRequest {
            method,
            url,
            headers,
            body,
            timeout_seconds,
        } => {
            problems.check(
                HTTP_METHODS.contains(&method.to_uppercase().as_str()),
                format!("{path}.method"),
                format!("must be one of {}", HTTP_METHODS.join(", ")),
            );
            templates_in(sources, path, &[("url", Some(url))]);
            for (name, value) in headers {
                sources.template(format!("{path}.headers.{name}"), value);
            }
            if let Some(body) = body {
                sources.value(&format!("{path}.body"), body);
            }
            if let Some(t) = timeout_seconds {
                problems.check(
                    (1..=120).contains(t),
                    format!("{path}.timeoutSeconds"),
                    "must be 1 to 120",
                );
            }
        }
        Leaf::SetVariables { values } => {
            for (name, value) in values {
                sources.value(&format!("{path}.values.{name}"), value);
            }
        }
        Leaf::WaitForReply {
            timeout_seconds,
            sender_id,
            phone,
        } => {
            problems.check(
                (1..=MAX_WAIT_SECONDS).contains(timeout_seconds),
                format!("{path}.timeoutSeconds"),
                format!("must be 1 to {MAX_WAIT_SECONDS}"),
            );
            templates_in(sources, path, &[("phone", phone.as_ref())]);
            if let Some(id) = sender_id {
                refs.push(Reference::Sender {
                    path: format!("{path}.senderId"),
                    id: *id,
                });
            }
        }
        Leaf::EndConversation { conversation_id } => {
            templates_in(
                sources,
                path,
                &[("conversationId", conversation_id.as_ref())],
            );
        }
        Leaf::Stop {} => {}
    }
}

async fn check_references(
    services: &Services,
    workspace_id: Uuid,
    references: Vec<Reference>,
    problems: &mut Problems,
) -> Result<()> {
    let db = &services.db;
    let sender_ids: BTreeSet<Uuid> = references
        .iter()
        .filter_map(|r| match r {
            Reference::Sender { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let senders = sender::Entity::find()
        .filter(sender::Column::WorkspaceId.eq(workspace_id))
        .filter(sender::Column::Id.is_in(sender_ids))
        .all(db)
        .await?;
    for reference in references {
        match reference {
            Reference::Sender { path, id } => problems.check(
                senders.iter().any(|s| s.id == id),
                path,
                format!("no sender {id} in this workspace"),
            ),
            Reference::Template {
                path,
                sender,
                name,
                language,
            } => {
                let Some(found) = senders.iter().find(|s| s.id == sender) else {
                    continue;
                };
                let approved = template::Entity::find()
                    .filter(template::Column::WorkspaceId.eq(workspace_id))
                    .filter(template::Column::SenderId.eq(sender))
                    .filter(template::Column::Name.eq(name.as_str()))
                    .filter(template::Column::Language.eq(language.as_str()))
                    .filter(template::Column::Status.eq(TemplateStatus::Approved))
                    .one(db)
                    .await?;
                problems.check(
                    approved.is_some(),
                    path,
                    format!(
                        "no approved template {name:?} ({language}) for sender {}",
                        found.phone_number
                    ),
                );
            }
            Reference::Assistant { path, id } => {
                let found = assistant::Entity::find_by_id(id)
                    .filter(assistant::Column::WorkspaceId.eq(workspace_id))
                    .one(db)
                    .await?;
                problems.check(
                    found.is_some(),
                    path,
                    format!("no assistant {id} in this workspace"),
                );
            }
        }
    }
    Ok(())
}
