//! Who delivers a sender's messages. `SANDBOX` is built in and answers locally; `CLOUD_API`
//! speaks Meta's WhatsApp Cloud API. Both see exactly the same validated message.

pub mod cloud_api;

use uuid::Uuid;
use waflow_entities::{enums::SenderProvider, sender};

use crate::{Services, error::Error, placeholders::ParameterFormat};

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
}

/// Sends `content` to the customer WhatsApp knows as `to` (a `wa_id`: digits, no `+`).
pub async fn send(
    services: &Services,
    sender: &sender::Model,
    to: &str,
    content: &Content,
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
                })?
                .send(to, content)
                .await
        }
    }
}
