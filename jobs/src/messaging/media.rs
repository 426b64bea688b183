//! Media both ways. Reading a received message's media: the message's payload names Meta's media
//! id, which the sender's Cloud API connection turns into bytes (`providers::cloud_api::media`).
//! Uploading a file to send by id: checked against Meta's types and sizes
//! (`content::media_types`), then streamed to Meta's media store. The access token stays on the
//! server: the caller gets bytes or an id, never Meta's URL.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sea_orm::EntityTrait;
use uuid::Uuid;
use waflow_entities::{
    enums::{MessageKind, SenderProvider},
    message, sender,
};

use super::MessagingService;
use crate::{
    content::media_types::{self, MediaType},
    context::find_in_workspace,
    error::{Error, Result},
    providers::cloud_api::{
        CloudApi,
        media::{MediaDownload, MediaUpload},
    },
};

impl MessagingService<'_> {
    /// The media of message `message_id` of the workspace. Errors: NOT_FOUND for no such
    /// message, a message without media (text, a location…), a SANDBOX message, or media Meta
    /// no longer has; PROVIDER_ERROR when Meta cannot be reached or the media is too large.
    pub async fn media(&self, workspace_id: Uuid, message_id: Uuid) -> Result<MediaDownload> {
        let db = &self.services.db;
        let message = find_in_workspace!(db, message, workspace_id, message_id, "message")?;
        let media_id = media_id(&message).ok_or(Error::NotFound("media on this message"))?;
        let sender = match message.sender_id {
            Some(id) => sender::Entity::find_by_id(id).one(db).await?,
            None => None,
        }
        .filter(|s| s.provider == SenderProvider::CloudApi)
        .ok_or(Error::NotFound("media on this message"))?;
        CloudApi::for_sender(self.services, &sender)?
            .media(&media_id)
            .await
    }
}

/// Meta's media id in a message's payload (`{"type": "image", "image": {"id": …}}`).
fn media_id(message: &message::Model) -> Option<String> {
    let payload = message.payload.as_ref()?;
    let kind = payload.get("type")?.as_str()?;
    if !["image", "video", "audio", "document", "sticker"].contains(&kind) {
        return None;
    }
    payload.get(kind)?.get("id")?.as_str().map(str::to_owned)
}

/// A file to upload to a sender's media store: its `Content-Type`, an optional file name, its
/// length when the client said (`Content-Length`), and its bytes as they arrive.
pub struct NewMedia<S> {
    pub content_type: String,
    pub filename: Option<String>,
    pub length: Option<u64>,
    pub body: S,
}

/// An uploaded file: the media id a message names (`{"image": {"id": …}}`), the message kind
/// its type is for, its MIME type and its size in bytes.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedMedia {
    pub id: String,
    pub kind: MessageKind,
    pub mime_type: String,
    pub bytes: u64,
}

impl MessagingService<'_> {
    /// Uploads a file for sender `sender_id` to send by id. A CLOUD_API sender's file goes to
    /// Meta's media store (kept 30 days); a SANDBOX sender checks it the same way and keeps
    /// nothing. Errors: SENDER_NOT_FOUND; VALIDATION_FAILED on `contentType` for a type WhatsApp
    /// does not carry, on `file` for an empty file or one over Meta's limit for its kind
    /// (`content::media_types`); PROVIDER_ERROR when Meta refuses it or cannot be reached.
    pub async fn upload_media<S>(
        &self,
        workspace_id: Uuid,
        sender_id: Uuid,
        media: NewMedia<S>,
    ) -> Result<UploadedMedia>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    {
        let sender =
            find_in_workspace!(&self.services.db, sender, workspace_id, sender_id, "sender")
                .map_err(|_| Error::SenderNotFound(sender_id.to_string()))?;
        let media_type = media_types::media_type(&media.content_type).ok_or_else(|| {
            Error::field(
                "contentType",
                format!(
                    "WhatsApp does not carry {:?}; it takes {}",
                    media.content_type,
                    media_types::accepted()
                ),
            )
        })?;
        let (length, body) = checked_body(media_type, media.length, media.body).await?;
        let id = match sender.provider {
            SenderProvider::Sandbox => format!("sandbox.{}", Uuid::now_v7().simple()),
            SenderProvider::CloudApi => {
                let filename = media
                    .filename
                    .unwrap_or_else(|| default_filename(media_type));
                CloudApi::for_sender(self.services, &sender)?
                    .upload_media(MediaUpload {
                        mime_type: media_type.mime.to_owned(),
                        filename,
                        length,
                        body,
                    })
                    .await?
            }
        };
        Ok(UploadedMedia {
            id,
            kind: media_type.kind,
            mime_type: media_type.mime.to_owned(),
            bytes: length,
        })
    }
}

/// The body with its length, refused when empty or over Meta's limit. A body of known length
/// streams through; a sticker (whose limit depends on its header) or a body of unknown length is
/// read first, never past the limit.
async fn checked_body<S>(
    media_type: MediaType,
    length: Option<u64>,
    mut body: S,
) -> Result<(u64, reqwest::Body)>
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
{
    let too_large = |size: String, limit: u64| {
        Error::field(
            "file",
            format!(
                "is {size} bytes; WhatsApp takes {} files of at most {limit} bytes",
                media_type.mime
            ),
        )
    };
    match length {
        Some(0) => return Err(Error::field("file", "is empty")),
        Some(n) if n > media_type.max_bytes => {
            return Err(too_large(n.to_string(), media_type.max_bytes));
        }
        Some(n) if media_type.kind != MessageKind::Sticker => {
            return Ok((n, reqwest::Body::wrap_stream(body)));
        }
        _ => {}
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::field("file", format!("could not be read: {e}")))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > media_type.max_bytes {
            return Err(too_large(
                format!("more than {}", media_type.max_bytes),
                media_type.max_bytes,
            ));
        }
    }
    let limit = media_types::max_bytes(media_type, &bytes);
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(Error::field("file", "is empty"));
    }
    if size > limit {
        return Err(too_large(size.to_string(), limit));
    }
    Ok((size, reqwest::Body::from(bytes)))
}

/// Meta needs a file name in the form; a document's is what the customer sees unless the
/// message gives one.
fn default_filename(media_type: MediaType) -> String {
    format!("file.{}", media_type.extension)
}
