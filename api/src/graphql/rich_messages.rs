//! `sendMessage`: media, a location, reply buttons, a list or a reaction, inside the 24-hour
//! window. The inputs mirror `waflow_jobs::content::rich_content`, which checks Meta's limits; they
//! are handed over through their JSON form, the same one a flow's `send_message` step takes.

use async_graphql::{Context, ID, InputObject, Object, OneofObject};
use serde::Serialize;
use waflow_jobs::{Error, content::rich_content::MessageContent, messaging::SendMessage};

use super::{
    GqlResult,
    messages::{LocationInput, MediaInput, Message, reply_to},
    parse_id, scope,
};

#[derive(InputObject)]
pub struct SendMessageInput {
    sender_id: ID,
    /// E.164, like +14155551234, or a business-scoped user id (`Contact.userId`).
    to: String,
    content: MessageContentInput,
    /// A message of this conversation the new one answers; WhatsApp shows it quoted.
    reply_to: Option<ID>,
    /// The same key twice sends once and returns the first message.
    idempotency_key: Option<String>,
}

/// One kind of message (Meta's message types), with Meta's limits checked before sending.
#[derive(OneofObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageContentInput {
    /// JPEG or PNG; `caption` ≤ 1024 characters.
    Image(MediaMessageInput),
    /// MP4 or 3GPP; `caption` ≤ 1024 characters.
    Video(MediaMessageInput),
    /// AAC, AMR, MP3, MP4 audio or OGG/Opus; no caption.
    Audio(MediaMessageInput),
    /// Any document; `caption` ≤ 1024 characters, `filename` as the customer sees it.
    Document(MediaMessageInput),
    /// WebP; no caption.
    Sticker(MediaMessageInput),
    Location(LocationInput),
    /// 1 to 3 reply buttons.
    Buttons(ReplyButtonsInput),
    /// A menu of 1 to 10 rows in 1 to 10 sections.
    List(ListMessageInput),
    /// An emoji on one of the conversation's messages.
    Reaction(ReactionInput),
}

/// Media by public `link` (Meta downloads it) or by the `id` of media uploaded to Meta.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaMessageInput {
    link: Option<String>,
    id: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
}

#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyButtonsInput {
    header: Option<InteractiveHeaderInput>,
    /// ≤ 1024 characters.
    body: String,
    /// ≤ 60 characters.
    footer: Option<String>,
    buttons: Vec<ReplyButtonInput>,
}

/// A reply-buttons message's header: text (≤ 60 characters) or media.
#[derive(OneofObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum InteractiveHeaderInput {
    Text(String),
    Image(MediaInput),
    Video(MediaInput),
    Document(MediaInput),
}

/// `id` (≤ 256 characters, unique) comes back in the customer's reply; `title` ≤ 20
/// characters, unique.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyButtonInput {
    id: String,
    title: String,
}

#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMessageInput {
    /// Text, ≤ 60 characters.
    header: Option<String>,
    /// ≤ 4096 characters.
    body: String,
    /// ≤ 60 characters.
    footer: Option<String>,
    /// The label of the button that opens the list, ≤ 20 characters.
    button: String,
    sections: Vec<ListSectionInput>,
}

/// `title` ≤ 24 characters, required when there are several sections.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListSectionInput {
    title: Option<String>,
    rows: Vec<ListRowInput>,
}

/// `id` ≤ 200 characters, unique in the list, comes back in the customer's reply; `title` ≤ 24;
/// `description` ≤ 72.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRowInput {
    id: String,
    title: String,
    description: Option<String>,
}

/// `emoji`: one emoji, or empty to remove the reaction.
#[derive(InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionInput {
    message_id: ID,
    emoji: String,
}

#[derive(Default)]
pub struct RichMessageMutation;

#[Object]
impl RichMessageMutation {
    /// Sends media, a location, reply buttons, a list or a reaction inside the customer's
    /// 24-hour window. Errors: VALIDATION_FAILED naming the field past Meta's limit
    /// (`content.buttons.buttons[3]`), OUTSIDE_24H_WINDOW, RATE_LIMITED, SENDER_OFFLINE,
    /// INVALID_PHONE_NUMBER, PROVIDER_ERROR.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> async_graphql::Result<Message> {
        let (services, workspace_id) = scope(ctx)?;
        let sender_id = parse_id(&input.sender_id, || {
            Error::SenderNotFound(input.sender_id.to_string())
        })?;
        let json = serde_json::to_value(&input.content).expect("inputs serialize");
        let content: MessageContent = serde_json::from_value(json)
            .map_err(|e| Error::field("content", e.to_string()))
            .gql()?;
        let send = SendMessage {
            sender_id,
            to: input.to,
            content,
            reply_to: reply_to(input.reply_to.as_ref())?,
            idempotency_key: input.idempotency_key,
        };
        services
            .messaging()
            .send_message(workspace_id, send)
            .await
            .gql()
            .map(Message)
    }
}
