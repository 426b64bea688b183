//! Who delivers a sender's messages. `SANDBOX` is built in and answers locally; `CLOUD_API`
//! speaks Meta's WhatsApp Cloud API. Both see exactly the same validated message.

pub mod cloud_api;

use uuid::Uuid;
use waflow_entities::{CustomerAddress, contact, enums::SenderProvider, sender};

use crate::{
    Services,
    content::{
        rich_content::RichContent,
        template_parameters::{ButtonValue, HeaderValue},
    },
    error::Error,
    placeholders::ParameterFormat,
};

/// What to send, after every rule has been checked.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    Template {
        name: String,
        language: String,
        format: ParameterFormat,
        /// (placeholder name, value) in the order the template declares them.
        values: Vec<(String, String)>,
        header: Option<HeaderValue>,
        buttons: Vec<ButtonValue>,
    },
    /// Media, a location or an interactive message, checked (`content::rich_content`).
    Rich(RichContent),
    /// An emoji on the message WhatsApp knows as `message_id` (a wamid); empty removes it.
    Reaction {
        message_id: String,
        emoji: String,
    },
}

/// The provider took the message; its id identifies it in later status updates.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub provider_message_id: String,
}

/// The provider refused the message: the error the caller sees, and the provider's own code and
/// words, kept on the message row.
#[derive(Debug)]
pub struct Refusal {
    pub error: Error,
    pub code: Option<String>,
    pub message: String,
    /// The request may have reached the provider and been taken: it was sent, but no answer
    /// came back (timed out, connection lost), or the answer said yes without a message id.
    /// The Cloud API has no idempotency key, so such a send must never be made again: the
    /// customer may have the message.
    pub outcome_unknown: bool,
}

/// Whom the provider is asked to deliver to: the id WhatsApp knows the customer's number by
/// (a `wa_id`: digits, no `+`), or their business-scoped user id when they hide their number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    WaId(String),
    UserId(String),
}

impl Recipient {
    /// For `contact`, addressed as `to`: the id WhatsApp gave the customer, else the one it
    /// gives such a number (`E164::whatsapp_id`), else the user id.
    pub fn of(contact: &contact::Model, to: &CustomerAddress) -> Self {
        if let Some(wa_id) = &contact.wa_id {
            return Self::WaId(wa_id.clone());
        }
        let phone = to.phone().cloned().or_else(|| {
            contact
                .phone
                .as_deref()
                .and_then(|p| waflow_entities::E164::parse(p).ok())
        });
        match (phone, &contact.user_id, to) {
            (Some(phone), _, _) => Self::WaId(phone.whatsapp_id()),
            (None, Some(user_id), _) => Self::UserId(user_id.clone()),
            (None, None, to) => Self::UserId(to.to_string()),
        }
    }
}

/// Sends `content` to `to`, as a reply to the message WhatsApp knows as `reply_to` (a wamid)
/// when given.
pub async fn send(
    services: &Services,
    sender: &sender::Model,
    to: &Recipient,
    content: &Content,
    reply_to: Option<&str>,
) -> Result<Accepted, Refusal> {
    match sender.provider {
        SenderProvider::Sandbox => Ok(Accepted {
            provider_message_id: format!("wamid.SANDBOX.{}", Uuid::now_v7().simple()),
        }),
        SenderProvider::CloudApi => {
            cloud_api::CloudApi::for_sender(services, sender)
                .map_err(|error| Refusal {
                    message: error.to_string(),
                    code: None,
                    error,
                    outcome_unknown: false,
                })?
                .send(to, content, reply_to)
                .await
        }
    }
}
