//! The checks a definition needs beyond its shape: every template and expression compiles, and
//! every sender, template and assistant it names exists in the workspace (a template approved).
//! Each step type adds its own checks (`StepType::validate`); this walks them and asks the
//! database.

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use waflow_entities::{assistant, enums::TemplateStatus, sender, template};

use super::definition::{self, Action, Definition, Step, Trigger};
use crate::{Services, egress::Egress, error::Result, sandbox::SourceChecks, validation::Problems};

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
    let mut checks = Checks {
        problems: Problems::new(),
        sources: SourceChecks::default(),
        references: Vec::new(),
        egress: &services.egress,
    };
    check_trigger(&definition.trigger, &mut checks.problems);
    if let Some(key) = &definition.concurrency_key {
        checks.sources.template("concurrencyKey", key);
    }
    definition::walk(&definition.steps, "steps", &mut |step, path| {
        check_step(step, path, &mut checks);
    });
    let Checks {
        mut problems,
        sources,
        mut references,
        ..
    } = checks;
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
pub(crate) enum Reference {
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

/// What the steps of a definition are checked against, gathered as the definition is walked:
/// the problems found at once, the template sources to compile in one request, and what the
/// steps name that must exist.
pub(crate) struct Checks<'a> {
    pub problems: Problems,
    pub sources: SourceChecks,
    pub references: Vec<Reference>,
    /// The policy a URL written out in a step is held to.
    pub egress: &'a Egress,
}

impl Checks<'_> {
    /// Each field given as a template, at `{path}.{name}`.
    pub fn templates(&mut self, path: &str, fields: &[(&str, Option<&String>)]) {
        for (name, value) in fields {
            if let Some(value) = value {
                self.sources.template(format!("{path}.{name}"), value);
            }
        }
    }
}

fn check_step(step: &Step, path: &str, checks: &mut Checks<'_>) {
    match &step.action {
        Action::Branch { branches, .. } => {
            for (i, branch) in branches.iter().enumerate() {
                checks
                    .sources
                    .expression(format!("{path}.branches[{i}].when"), &branch.when);
            }
        }
        Action::Loop { items, .. } => checks.sources.expression(format!("{path}.items"), items),
        Action::Leaf(leaf) => leaf.validate(path, checks),
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
