//! Sending and receiving messages, and the 24-hour window.

use std::collections::BTreeMap;

use async_graphql::{
    Context, ID, InputObject, Json, Object, OneofObject, SimpleObject, connection::Connection,
};
use chrono::{DateTime, Utc};
use waflow_entities::{
    enums::{MessageDirection, MessageKind, MessageRole, MessageStatus},
    inbound_dead_letter, message,
};
use waflow_jobs::{
    Error,
    content::template_parameters as params,
    messaging::{SendTemplate, SendText, SessionStatus as Session, TemplateRef, dead_letters},
};

use super::{
    GqlResult, connection, conversations::Conversation, page_request, parse_id, scope,
    templates::Template,
};

pub struct Message(pub message::Model);

#[Object]
impl Message {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn direction(&self) -> MessageDirection {
        self.0.direction
    }
    /// Who wrote it: CUSTOMER, ASSISTANT, AGENT (sent through the API) or SYSTEM.
    async fn role(&self) -> MessageRole {
        self.0.role
    }
    async fn kind(&self) -> MessageKind {
        self.0.kind
    }
    /// The text; for a template, its body with the placeholders filled in.
    async fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }
    /// Media id and type, location, or button payload of an inbound message.
    async fn payload(&self) -> Option<Json<serde_json::Value>> {
        self.0.payload.clone().map(Json)
    }
    async fn status(&self) -> MessageStatus {
        self.0.status
    }
    async fn provider_message_id(&self) -> Option<&str> {
        self.0.provider_message_id.as_deref()
    }
    /// The provider's error code when the message FAILED.
    async fn error_code(&self) -> Option<&str> {
        self.0.error_code.as_deref()
    }
    async fn error_message(&self) -> Option<&str> {
        self.0.error_message.as_deref()
    }
    async fn template(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Template>> {
        let (services, workspace_id) = scope(ctx)?;
        match self.0.template_id {
            Some(id) => match services.templates().get(workspace_id, id).await {
                Ok(template) => Ok(Some(Template(template))),
                Err(Error::NotFound(_)) => Ok(None),
                Err(e) => Err(e).gql(),
            },
            None => Ok(None),
        }
    }
    /// The values the template's placeholders were filled with.
    async fn template_variables(&self) -> Option<Json<serde_json::Value>> {
        self.0
            .template_params
            .as_ref()
            .map(|p| Json(p["values"].clone()))
    }
    async fn idempotency_key(&self) -> Option<&str> {
        self.0.idempotency_key.as_deref()
    }
    async fn conversation(&self, ctx: &Context<'_>) -> async_graphql::Result<Conversation> {
        let (services, workspace_id) = scope(ctx)?;
        services
            .conversations()
            .get(workspace_id, self.0.conversation_id)
            .await
            .gql()
            .map(Conversation)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Whether a free-form message can reach the customer now.
#[derive(SimpleObject)]
pub struct SessionStatus {
    is_open: bool,
    can_send_freeform: bool,
    requires_template: bool,
    last_customer_message_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    minutes_remaining: i64,
}

impl From<Session> for SessionStatus {
    fn from(s: Session) -> Self {
        Self {
            is_open: s.is_open,
            can_send_freeform: s.is_open,
            requires_template: !s.is_open,
            last_customer_message_at: s.last_customer_message_at,
            expires_at: s.expires_at,
            minutes_remaining: s.minutes_remaining,
        }
    }
}

#[derive(InputObject)]
pub struct SendTextMessageInput {
    sender_id: ID,
    /// E.164, like +14155551234, or a business-scoped user id (`Contact.userId`) for a customer
    /// who hides their number.
    to: String,
    /// 1 to 4096 characters.
    text: String,
    /// A message of this conversation the text answers; WhatsApp shows it quoted.
    reply_to: Option<ID>,
    /// The same key twice sends once and returns the first message.
    idempotency_key: Option<String>,
}

#[derive(InputObject)]
pub struct SendTemplateMessageInput {
    sender_id: ID,
    /// The template, or `templateName` with `language`.
    template_id: Option<ID>,
    template_name: Option<String>,
    language: Option<String>,
    /// E.164, like +14155551234, or a business-scoped user id (`Contact.userId`) for a customer
    /// who hides their number.
    to: String,
    /// Stored on a new contact.
    recipient_name: Option<String>,
    /// Values for {{1}}..{{n}}, in order.
    #[graphql(default)]
    variables: Vec<String>,
    /// Values for named placeholders, like {"customer_name": "Ana"}.
    named_variables: Option<Json<BTreeMap<String, String>>>,
    /// The header's parameter, when the template's header is media, a location, or text with
    /// a placeholder.
    header: Option<TemplateHeaderParameterInput>,
    /// Values for the buttons that take one: a URL's dynamic suffix, a quick reply's payload, a
    /// copy-code button's coupon code, an OTP button's code.
    #[graphql(default)]
    buttons: Vec<TemplateButtonParameterInput>,
    idempotency_key: Option<String>,
}

/// A template header's parameter: exactly one kind, the header's own.
#[derive(OneofObject)]
pub enum TemplateHeaderParameterInput {
    /// The value of a TEXT header's placeholder; the header stays within 60 characters.
    Text(String),
    Image(MediaInput),
    Video(MediaInput),
    Document(MediaInput),
    Location(LocationInput),
}

/// Media by public `link` (http or https; Meta downloads it) or by the `id` of media uploaded
/// to Meta; one of the two. `filename`: documents only.
#[derive(InputObject, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaInput {
    link: Option<String>,
    id: Option<String>,
    filename: Option<String>,
}

/// Degrees: latitude −90..90, longitude −180..180.
#[derive(InputObject, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationInput {
    latitude: f64,
    longitude: f64,
    name: Option<String>,
    address: Option<String>,
}

/// A value for the template's button at `index` (zero-based, in the template's order); one of
/// `text` (a URL button's suffix, an OTP button's code), `payload` (QUICK_REPLY) or
/// `couponCode` (COPY_CODE: 1 to 20 letters and digits).
#[derive(InputObject)]
pub struct TemplateButtonParameterInput {
    index: u32,
    text: Option<String>,
    payload: Option<String>,
    coupon_code: Option<String>,
}

/// The message a send answers, as `replyTo` names it.
pub(super) fn reply_to(id: Option<&ID>) -> async_graphql::Result<Option<uuid::Uuid>> {
    id.map(|id| parse_id(id, || Error::field("replyTo", "is not a message id")))
        .transpose()
}

/// The header's and buttons' parameters as the services take them.
pub(super) fn template_parameters(
    header: Option<TemplateHeaderParameterInput>,
    buttons: Vec<TemplateButtonParameterInput>,
) -> params::TemplateParameters {
    params::TemplateParameters {
        header: header.map(Into::into),
        buttons: buttons.into_iter().map(Into::into).collect(),
    }
}

impl From<MediaInput> for params::Media {
    fn from(m: MediaInput) -> Self {
        params::Media {
            link: m.link,
            id: m.id,
            filename: m.filename,
        }
    }
}

impl From<TemplateHeaderParameterInput> for params::HeaderParameter {
    fn from(h: TemplateHeaderParameterInput) -> Self {
        use TemplateHeaderParameterInput as In;
        match h {
            In::Text(text) => Self::Text(text),
            In::Image(m) => Self::Image(m.into()),
            In::Video(m) => Self::Video(m.into()),
            In::Document(m) => Self::Document(m.into()),
            In::Location(l) => Self::Location(params::Location {
                latitude: l.latitude,
                longitude: l.longitude,
                name: l.name,
                address: l.address,
            }),
        }
    }
}

impl From<TemplateButtonParameterInput> for params::ButtonParameter {
    fn from(b: TemplateButtonParameterInput) -> Self {
        params::ButtonParameter {
            index: b.index as usize,
            text: b.text,
            payload: b.payload,
            coupon_code: b.coupon_code,
        }
    }
}

#[derive(InputObject)]
pub struct SimulateInboundMessageInput {
    /// A SANDBOX sender.
    sender_id: ID,
    /// The customer: a number in E.164, or a business-scoped user id.
    from: String,
    text: String,
    /// The customer's WhatsApp profile name.
    name: Option<String>,
}

/// A webhook entry Waflow could not read as a message (no id, no customer), kept whole.
pub struct InboundDeadLetter(inbound_dead_letter::Model);

#[Object]
impl InboundDeadLetter {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn sender_id(&self) -> Option<ID> {
        self.0.sender_id.map(Into::into)
    }
    /// Why it could not be read.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// The entry as Meta sent it.
    async fn raw(&self) -> Json<serde_json::Value> {
        Json(self.0.raw.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct MessageQuery;

#[Object]
impl MessageQuery {
    /// Inbound entries of the workspace's senders that could not be read as messages, oldest
    /// first. Each is also a warning in the log and a count on
    /// `waflow_inbound_dead_letters_total`.
    async fn inbound_dead_letters(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, InboundDeadLetter>> {
        let (services, workspace_id) = scope(ctx)?;
        let page = dead_letters::list(services, workspace_id, page_request(first, after)?)
            .await
            .gql()?;
        Ok(connection(page, |l| l.id, InboundDeadLetter))
    }

    async fn message(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Message> {
        let (services, workspace_id) = scope(ctx)?;
        let id = parse_id(&id, || Error::NotFound("message"))?;
        services
            .conversations()
            .message(workspace_id, id)
            .await
            .gql()
            .map(Message)
    }

    /// Whether the 24-hour window is open between a sender and a customer, so a client can
    /// choose between free-form text and a template before it tries.
    async fn session_status(
        &self,
        ctx: &Context<'_>,
        sender_id: ID,
        recipient_phone: String,
    ) -> async_graphql::Result<SessionStatus> {
        let (services, workspace_id) = scope(ctx)?;
        let sender_id = parse_id(&sender_id, || Error::SenderNotFound(sender_id.to_string()))?;
        let status = services
            .messaging()
            .session_status(workspace_id, sender_id, &recipient_phone)
            .await
            .gql()?;
        Ok(status.into())
    }
}

#[derive(Default)]
pub struct MessageMutation;

#[Object]
impl MessageMutation {
    /// Sends free-form text, allowed within 24 hours of the customer's last message.
    async fn send_text_message(
        &self,
        ctx: &Context<'_>,
        input: SendTextMessageInput,
    ) -> async_graphql::Result<Message> {
        let (services, workspace_id) = scope(ctx)?;
        let sender_id = parse_id(&input.sender_id, || {
            Error::SenderNotFound(input.sender_id.to_string())
        })?;
        let send = SendText {
            sender_id,
            to: input.to,
            text: input.text,
            reply_to: reply_to(input.reply_to.as_ref())?,
            idempotency_key: input.idempotency_key,
        };
        services
            .messaging()
            .send_text(workspace_id, send)
            .await
            .gql()
            .map(Message)
    }

    /// Sends an approved template, allowed at any time.
    async fn send_template_message(
        &self,
        ctx: &Context<'_>,
        input: SendTemplateMessageInput,
    ) -> async_graphql::Result<Message> {
        let (services, workspace_id) = scope(ctx)?;
        let sender_id = parse_id(&input.sender_id, || {
            Error::SenderNotFound(input.sender_id.to_string())
        })?;
        let template = match (input.template_id, input.template_name, input.language) {
            (Some(id), None, _) => {
                let name = id.to_string();
                TemplateRef::Id(parse_id(&id, || Error::TemplateNotFound {
                    name,
                    language: String::new(),
                })?)
            }
            (None, Some(name), Some(language)) => TemplateRef::Name { name, language },
            _ => {
                return Err(Error::field(
                    "templateId",
                    "give either templateId, or templateName and language",
                ))
                .gql();
            }
        };
        let send = SendTemplate {
            sender_id,
            template,
            to: input.to,
            recipient_name: input.recipient_name,
            variables: input.variables,
            named_variables: input.named_variables.map(|j| j.0).unwrap_or_default(),
            parameters: template_parameters(input.header, input.buttons),
            idempotency_key: input.idempotency_key,
        };
        services
            .messaging()
            .send_template(workspace_id, send)
            .await
            .gql()
            .map(Message)
    }

    /// Delivers a customer's text to a SANDBOX sender as if it came from WhatsApp.
    async fn simulate_inbound_message(
        &self,
        ctx: &Context<'_>,
        input: SimulateInboundMessageInput,
    ) -> async_graphql::Result<Message> {
        let (services, workspace_id) = scope(ctx)?;
        let sender_id = parse_id(&input.sender_id, || {
            Error::SenderNotFound(input.sender_id.to_string())
        })?;
        let received = services
            .messaging()
            .simulate_inbound(
                workspace_id,
                sender_id,
                &input.from,
                &input.text,
                input.name,
            )
            .await
            .gql()?;
        Ok(Message(received.message))
    }
}
