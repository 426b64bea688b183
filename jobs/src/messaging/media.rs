//! Reading a received message's media: the message's payload names Meta's media id, which the
//! sender's Cloud API connection turns into bytes (`providers::cloud_api::media`). The access
//! token stays on the server: the caller gets the bytes, never Meta's URL.

use sea_orm::EntityTrait;
use uuid::Uuid;
use waflow_entities::{enums::SenderProvider, message, sender};

use super::MessagingService;
use crate::{
    error::{Error, Result},
    providers::cloud_api::{CloudApi, media::MediaDownload},
    services::find_in_workspace,
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
