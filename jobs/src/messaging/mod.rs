//! Sending WhatsApp messages. Every rule WhatsApp enforces is checked here, before anything is
//! stored or leaves the server, in the order a user would fix them: the sender, the recipient,
//! the content, the customer's consent and window, then the sender's rate limit. The GraphQL
//! mutations and the flow steps both call this service.

pub mod ai_replies;
pub mod conversations;
pub mod dead_letters;
pub mod evaluation;
pub mod ingest;
pub mod lifecycle;
pub mod media;
pub mod meta_inbound;
pub mod notices;
pub mod replay;
mod send_message;
pub mod statuses;
pub mod store;
pub mod webhook;
pub mod window;

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;
use waflow_entities::{
    CustomerAddress, E164, contact,
    enums::{
        MessageDirection, MessageKind, MessageRole, MessageStatus, QualityRating, SenderStatus,
        TemplateCategory, TemplateStatus,
    },
    message, sender, template,
};

use crate::{
    Services,
    content::{
        template_components::Components,
        template_parameters::{self, TemplateParameters},
    },
    context::find_in_workspace,
    error::{Error, Result},
    placeholders::{ParameterFormat, Placeholders, render},
    providers::{self, Content, Recipient},
};
pub use send_message::SendMessage;
pub use window::SessionStatus;

/// WhatsApp's limit for a text message body.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The error code of a message whose send's outcome is unknown: the request may have reached
/// WhatsApp (no answer came back, or its worker died waiting), so it is never sent again.
pub const DELIVERY_UNKNOWN: &str = "DELIVERY_UNKNOWN";

#[derive(Debug, Clone)]
pub struct SendText {
    pub sender_id: Uuid,
    pub to: String,
    pub text: String,
    /// The conversation's message this one answers (Waflow's id): WhatsApp shows it quoted.
    pub reply_to: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
pub enum TemplateRef {
    Id(Uuid),
    Name { name: String, language: String },
}

#[derive(Debug, Clone)]
pub struct SendTemplate {
    pub sender_id: Uuid,
    pub template: TemplateRef,
    pub to: String,
    pub recipient_name: Option<String>,
    /// Values for `{{1}}`..`{{n}}`.
    pub variables: Vec<String>,
    /// Values for named placeholders like `{{customer_name}}`.
    pub named_variables: BTreeMap<String, String>,
    /// Values for the header and buttons, when the template has parameters there.
    pub parameters: TemplateParameters,
    pub idempotency_key: Option<String>,
}

/// A message about to be stored and sent.
struct Outgoing {
    role: MessageRole,
    kind: MessageKind,
    body: String,
    template_id: Option<Uuid>,
    template_params: Option<serde_json::Value>,
    recipient_name: Option<String>,
    content: Content,
    /// What the message carries besides its text (media, buttons), as stored on the row.
    payload: Option<serde_json::Value>,
    /// WhatsApp's id of the message this one answers.
    reply_to: Option<String>,
}

pub struct MessagingService<'a> {
    pub(crate) services: &'a Services,
}

impl Services {
    pub fn messaging(&self) -> MessagingService<'_> {
        MessagingService { services: self }
    }
}

impl MessagingService<'_> {
    pub async fn send_text(&self, workspace_id: Uuid, input: SendText) -> Result<message::Model> {
        self.send_text_as(workspace_id, input, MessageRole::Agent)
            .await
    }

    /// A text written by `role`: an agent (the API, a flow) or the assistant (auto-reply).
    pub async fn send_text_as(
        &self,
        workspace_id: Uuid,
        input: SendText,
        role: MessageRole,
    ) -> Result<message::Model> {
        let key = input.idempotency_key.as_deref();
        let (sender, to) = match self
            .begin_send(workspace_id, input.sender_id, &input.to, key)
            .await?
        {
            Begin::AlreadySent(message) => return Ok(message),
            Begin::Go(sender, to) => (sender, to),
        };
        if input.text.trim().is_empty() {
            return Err(Error::field("text", "must not be empty"));
        }
        let length = input.text.chars().count();
        if length > MAX_TEXT_CHARS {
            return Err(Error::MessageTooLong { length });
        }
        let reply_to = self
            .replied_message(workspace_id, &sender, &to, input.reply_to, "replyTo")
            .await?;
        self.free_form_allowed(workspace_id, &sender, &to).await?;
        let outgoing = Outgoing {
            role,
            kind: MessageKind::Text,
            body: input.text.clone(),
            template_id: None,
            template_params: None,
            recipient_name: None,
            content: Content::Text(input.text),
            payload: None,
            reply_to,
        };
        self.deliver(workspace_id, &sender, &to, outgoing, input.idempotency_key)
            .await
    }

    pub async fn send_template(
        &self,
        workspace_id: Uuid,
        input: SendTemplate,
    ) -> Result<message::Model> {
        let key = input.idempotency_key.as_deref();
        let (sender, to) = match self
            .begin_send(workspace_id, input.sender_id, &input.to, key)
            .await?
        {
            Begin::AlreadySent(message) => return Ok(message),
            Begin::Go(sender, to) => (sender, to),
        };
        let template = self
            .approved_template(workspace_id, &sender, &input.template)
            .await?;
        let components = Components::from_json(&template.components)?;
        let body = components.body.clone();
        let placeholders = Placeholders::parse(&body)
            .map_err(|e| Error::Internal(format!("stored template body is invalid: {e}")))?;
        let values = match_variables(
            &template,
            &placeholders,
            &input.variables,
            &input.named_variables,
        )?;
        let paired = template_parameters::pair(&components, &input.parameters)
            .map_err(|m| m.into_error(&template.name))?;

        if template.category == TemplateCategory::Marketing {
            let contact = self.contact_of(workspace_id, &to).await?;
            if contact.is_some_and(|c| c.opted_out) {
                return Err(Error::RecipientOptedOut);
            }
            if sender.quality_rating == QualityRating::Red && !sender.allow_marketing_on_low_quality
            {
                return Err(Error::SenderQualityLow);
            }
        }
        self.services
            .rate_limiter
            .acquire(sender.id, sender.messages_per_second)
            .await?;

        let map: BTreeMap<String, String> = values.iter().cloned().collect();
        let outgoing = Outgoing {
            role: MessageRole::Agent,
            kind: MessageKind::Template,
            body: render(&body, &map),
            template_id: Some(template.id),
            template_params: Some(serde_json::json!({
                "name": template.name,
                "language": template.language,
                "format": placeholders.format,
                "values": map,
                "parameters": input.parameters,
            })),
            recipient_name: input.recipient_name,
            payload: None,
            reply_to: None,
            content: Content::Template {
                name: template.name.clone(),
                language: template.language.clone(),
                format: placeholders.format,
                values,
                header: paired.header,
                buttons: paired.buttons,
            },
        };
        self.deliver(workspace_id, &sender, &to, outgoing, input.idempotency_key)
            .await
    }

    /// The checks every send starts with: a used idempotency key answers with its message;
    /// otherwise the sender must be online and the recipient a valid number.
    async fn begin_send(
        &self,
        workspace_id: Uuid,
        sender_id: Uuid,
        to: &str,
        key: Option<&str>,
    ) -> Result<Begin> {
        if let Some(sent) = self.by_idempotency_key(workspace_id, key).await? {
            return Ok(Begin::AlreadySent(sent));
        }
        let sender = self.online_sender(workspace_id, sender_id).await?;
        let to = self.address(workspace_id, to, "to").await?;
        Ok(Begin::Go(sender, to))
    }

    /// Whether the 24-hour window is open between the sender and `phone`.
    pub async fn session_status(
        &self,
        workspace_id: Uuid,
        sender_id: Uuid,
        phone: &str,
    ) -> Result<SessionStatus> {
        let sender =
            find_in_workspace!(&self.services.db, sender, workspace_id, sender_id, "sender")
                .map_err(|_| Error::SenderNotFound(sender_id.to_string()))?;
        let to = self.address(workspace_id, phone, "recipientPhone").await?;
        self.session_of(workspace_id, sender.id, &to).await
    }

    async fn session_of(
        &self,
        workspace_id: Uuid,
        sender_id: Uuid,
        to: &CustomerAddress,
    ) -> Result<SessionStatus> {
        let last = match self.contact_of(workspace_id, to).await? {
            Some(contact) => {
                store::last_inbound_at(&self.services.db, contact.id, sender_id).await?
            }
            None => None,
        };
        Ok(SessionStatus::at(last, Utc::now()))
    }

    async fn by_idempotency_key(
        &self,
        workspace_id: Uuid,
        key: Option<&str>,
    ) -> Result<Option<message::Model>> {
        let Some(key) = key else { return Ok(None) };
        if key.trim().is_empty() || key.len() > 200 {
            return Err(Error::field(
                "idempotencyKey",
                "must be 1 to 200 characters",
            ));
        }
        Ok(message::Entity::find()
            .filter(message::Column::WorkspaceId.eq(workspace_id))
            .filter(message::Column::IdempotencyKey.eq(key))
            .one(&self.services.db)
            .await?)
    }

    async fn online_sender(&self, workspace_id: Uuid, sender_id: Uuid) -> Result<sender::Model> {
        let sender =
            find_in_workspace!(&self.services.db, sender, workspace_id, sender_id, "sender")
                .map_err(|_| Error::SenderNotFound(sender_id.to_string()))?;
        if sender.status != SenderStatus::Online {
            let reason = sender
                .status_reason
                .clone()
                .unwrap_or_else(|| "it is set OFFLINE".into());
            return Err(Error::SenderOffline { reason });
        }
        Ok(sender)
    }

    /// The customer `input` names: a valid number or a user id, or the number of a contact
    /// WhatsApp vouched for (one our numbering-plan data does not know yet, stored when they
    /// wrote). `field` names the input in the error.
    async fn address(
        &self,
        workspace_id: Uuid,
        input: &str,
        field: &str,
    ) -> Result<CustomerAddress> {
        let refused = match CustomerAddress::parse(input) {
            Ok(address) => return Ok(address),
            Err(refused) => refused,
        };
        if let Ok(known) = CustomerAddress::parse_known(input)
            && let Some(contact) = self.contact_of(workspace_id, &known).await?
            && contact.phone.as_deref() == known.phone().map(E164::as_str)
        {
            return Ok(known);
        }
        Err(Error::phone(field, refused))
    }

    async fn contact_of(
        &self,
        workspace_id: Uuid,
        to: &CustomerAddress,
    ) -> Result<Option<contact::Model>> {
        let identity = contact::identified_by(to.phone(), to.user_id())
            .expect("an address is a number or a user id");
        Ok(contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(workspace_id))
            .filter(identity)
            .one(&self.services.db)
            .await?)
    }

    pub(crate) async fn approved_template(
        &self,
        workspace_id: Uuid,
        sender: &sender::Model,
        reference: &TemplateRef,
    ) -> Result<template::Model> {
        let query = template::Entity::find()
            .filter(template::Column::WorkspaceId.eq(workspace_id))
            .filter(template::Column::SenderId.eq(sender.id));
        let (found, name, language) = match reference {
            TemplateRef::Id(id) => {
                let found = query
                    .filter(template::Column::Id.eq(*id))
                    .one(&self.services.db)
                    .await?;
                (found, id.to_string(), String::new())
            }
            TemplateRef::Name { name, language } => {
                let found = query
                    .filter(template::Column::Name.eq(name.as_str()))
                    .filter(template::Column::Language.eq(language.as_str()))
                    .one(&self.services.db)
                    .await?;
                (found, name.clone(), language.clone())
            }
        };
        let template = found.ok_or(Error::TemplateNotFound { name, language })?;
        if template.status != TemplateStatus::Approved {
            return Err(Error::TemplateNotApproved {
                name: template.name.clone(),
                status: format!("{:?}", template.status).to_uppercase(),
            });
        }
        Ok(template)
    }

    /// Stores the message (with its contact and conversation) and hands it to the provider.
    /// A provider refusal leaves the message FAILED with the provider's code.
    async fn deliver(
        &self,
        workspace_id: Uuid,
        sender: &sender::Model,
        to: &CustomerAddress,
        outgoing: Outgoing,
        idempotency_key: Option<String>,
    ) -> Result<message::Model> {
        // `begin_send` has just looked the key up: only a retry, after a concurrent send with
        // the same key won the insert, needs to look again.
        let mut retrying = false;
        let stored = store::retry_on_conflict(|| {
            let look_up_key = std::mem::replace(&mut retrying, true);
            self.store_outbound(
                workspace_id,
                sender,
                to,
                &outgoing,
                &idempotency_key,
                look_up_key,
            )
        })
        .await?;
        let (message, recipient) = match stored {
            Stored::Existing(message) => return Ok(message),
            Stored::New(message, recipient) => (message, recipient),
        };
        // The stored message (its idempotency key) is what stops a second send: it must
        // survive a power cut before WhatsApp has the message.
        self.services.durability.sync().await?;
        let outcome = providers::send(
            self.services,
            sender,
            &recipient,
            &outgoing.content,
            outgoing.reply_to.as_deref(),
        )
        .await;
        let mut model: message::ActiveModel = message.into();
        model.updated_at = Set(Utc::now());
        match outcome {
            Ok(accepted) => {
                metrics::counter!("waflow_messages_sent_total", "sender" => sender.id.to_string())
                    .increment(1);
                model.provider_message_id = Set(Some(accepted.provider_message_id));
                let message = model.update(&self.services.db).await?;
                self.services
                    .jobs
                    .message_accepted(sender, &message)
                    .await?;
                Ok(message)
            }
            Err(refusal) if refusal.outcome_unknown => {
                // As after a crash mid-send: QUEUED without a provider id, found again by its
                // idempotency key and never sent again; the note says why.
                metrics::counter!("waflow_messages_unconfirmed_total", "sender" => sender.id.to_string())
                    .increment(1);
                tracing::warn!(message_id = %model.id.as_ref(), reason = %refusal.message, "a send's outcome is unknown; it is not sent again");
                model.error_code = Set(Some(DELIVERY_UNKNOWN.into()));
                model.error_message = Set(Some(format!(
                    "{}; it may have been delivered, so it is not sent again",
                    refusal.message
                )));
                Ok(model.update(&self.services.db).await?)
            }
            Err(refusal) => {
                metrics::counter!("waflow_messages_failed_total", "sender" => sender.id.to_string())
                    .increment(1);
                model.status = Set(MessageStatus::Failed);
                model.error_code = Set(Some(
                    refusal
                        .code
                        .unwrap_or_else(|| refusal.error.code().to_owned()),
                ));
                model.error_message = Set(Some(refusal.message));
                let message = model.update(&self.services.db).await?;
                self.publish_status(&message).await;
                Err(Error::SendFailed {
                    message_id: message.id,
                    cause: Box::new(refusal.error),
                })
            }
        }
    }

    async fn store_outbound(
        &self,
        workspace_id: Uuid,
        sender: &sender::Model,
        to: &CustomerAddress,
        outgoing: &Outgoing,
        idempotency_key: &Option<String>,
        look_up_key: bool,
    ) -> Result<Stored> {
        // A concurrent send with the same key won the race: answer with its message.
        if look_up_key
            && let Some(sent) = self
                .by_idempotency_key(workspace_id, idempotency_key.as_deref())
                .await?
        {
            return Ok(Stored::Existing(sent));
        }
        let txn = crate::db::begin_write(&self.services.db).await?;
        let now = Utc::now();
        let customer = store::Customer::addressed(to, outgoing.recipient_name.as_deref());
        let upserted = store::upsert_contact(&txn, workspace_id, &customer, false).await?;
        let store::ActiveConversation {
            conversation,
            ended,
            ..
        } = store::active_conversation(&txn, sender, &upserted, now).await?;
        let contact = upserted.contact;
        let message = message::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            conversation_id: Set(conversation.id),
            sender_id: Set(Some(sender.id)),
            contact_id: Set(Some(contact.id)),
            direction: Set(MessageDirection::Outbound),
            role: Set(outgoing.role),
            kind: Set(outgoing.kind),
            body: Set(Some(outgoing.body.clone())),
            template_id: Set(outgoing.template_id),
            template_params: Set(outgoing.template_params.clone()),
            provider_message_id: Set(None),
            status: Set(MessageStatus::Queued),
            error_code: Set(None),
            error_message: Set(None),
            idempotency_key: Set(idempotency_key.clone()),
            payload: Set(outgoing.payload.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        if let Some(ended) = ended {
            self.publish_ended(workspace_id, ended).await;
        }
        self.services
            .jobs
            .arm_inactivity(message.conversation_id, sender.inactivity_timeout_seconds)
            .await?;
        Ok(Stored::New(message, Recipient::of(&contact, to)))
    }
}

enum Begin {
    AlreadySent(message::Model),
    Go(sender::Model, CustomerAddress),
}

enum Stored {
    /// The message, and whom WhatsApp is asked to deliver it to.
    New(message::Model, Recipient),
    Existing(message::Model),
}

/// Pairs the given values with the body's placeholders; exactly one value each. The header's
/// and buttons' parameters are paired by `template_parameters::pair`.
pub(crate) fn match_variables(
    template: &template::Model,
    placeholders: &Placeholders,
    positional: &[String],
    named: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let mismatch = |given: String| Error::TemplateVariablesMismatch {
        name: template.name.clone(),
        expected: placeholders.count(),
        names: placeholders
            .names
            .iter()
            .map(|n| format!("{{{{{n}}}}}"))
            .collect::<Vec<_>>()
            .join(", "),
        given,
    };
    let values: Vec<(String, String)> = match placeholders.format {
        ParameterFormat::Positional => {
            if !named.is_empty() || positional.len() != placeholders.count() {
                let given = if named.is_empty() {
                    positional.len().to_string()
                } else {
                    format!("named values {:?}", named.keys().collect::<Vec<_>>())
                };
                return Err(mismatch(given));
            }
            placeholders
                .names
                .iter()
                .cloned()
                .zip(positional.iter().cloned())
                .collect()
        }
        ParameterFormat::Named => {
            let keys: Vec<&String> = named.keys().collect();
            let expected: std::collections::BTreeSet<&String> = placeholders.names.iter().collect();
            if !positional.is_empty()
                || keys.len() != expected.len()
                || !keys.iter().all(|k| expected.contains(k))
            {
                let given = if positional.is_empty() {
                    format!("{keys:?}")
                } else {
                    format!("{} positional value(s)", positional.len())
                };
                return Err(mismatch(given));
            }
            placeholders
                .names
                .iter()
                .map(|n| (n.clone(), named[n].clone()))
                .collect()
        }
    };
    for (i, (_, value)) in values.iter().enumerate() {
        if value.trim().is_empty() {
            return Err(Error::field(format!("variables[{i}]"), "must not be empty"));
        }
    }
    Ok(values)
}
