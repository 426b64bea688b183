//! Received media: an inbound message names its media by Meta's media id; Meta answers the id
//! with a short-lived URL that takes the sender's token ("Media" reference: retrieve media URL,
//! download media). Meta keeps inbound media for 30 days.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::{CloudApi, urlencode};
use crate::{error::Error, providers::Refusal};

/// The largest media WhatsApp carries (a document), and so the most Waflow streams: 100 MiB.
pub const MAX_MEDIA_BYTES: u64 = 100 << 20;
/// How long a download or an upload may take in all.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);
/// Where Meta serves media for its own Graph API host.
const META_MEDIA_HOST_SUFFIX: &str = ".fbsbx.com";

#[derive(Deserialize)]
struct MediaUrl {
    url: String,
    mime_type: String,
    file_size: Option<u64>,
}

/// An inbound message's media as Meta streams it.
pub struct MediaDownload {
    pub content_type: String,
    /// Bytes, when Meta says.
    pub size: Option<u64>,
    pub response: reqwest::Response,
}

impl MediaDownload {
    /// The bytes as they arrive; an error mid-way ends the stream with it, so a client sees a
    /// short download rather than a complete-looking one.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
        futures::stream::unfold(Some(self.response), |response| async move {
            let mut response = response?;
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk.to_vec()), Some(response))),
                Ok(None) => None,
                Err(error) => Some((Err(std::io::Error::other(error)), None)),
            }
        })
    }
}

impl CloudApi<'_> {
    /// Streams media `media_id`. Errors: NOT_FOUND when Meta no longer has it (error 100 or
    /// HTTP 404), PROVIDER_ERROR when it is over [`MAX_MEDIA_BYTES`], when its URL is on a host
    /// the sender's token was not entered for, or when Meta cannot be reached.
    pub async fn media(&self, media_id: &str) -> Result<MediaDownload, Error> {
        let url = format!("{}/{}", self.base_url, urlencode(media_id));
        let found: MediaUrl = self.call(Method::GET, url, None).await.map_err(gone_or)?;
        if let Some(size) = found.file_size.filter(|s| *s > MAX_MEDIA_BYTES) {
            return Err(Error::provider(
                None,
                format!("the media is {size} bytes, above the {MAX_MEDIA_BYTES} Waflow streams"),
            ));
        }
        if !self.token_may_go_to(&found.url) {
            return Err(Error::provider(
                None,
                "Meta named a media URL on a host the sender's access token is not for",
            ));
        }
        let response = self
            .request(Method::GET, &found.url)
            .map_err(|why| super::unreachable(why).error)?
            .timeout(TRANSFER_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                Error::provider(
                    None,
                    format!("cannot download the media: {}", super::describe(e)),
                )
            })?;
        match response.status().as_u16() {
            200..=299 => Ok(MediaDownload {
                content_type: found.mime_type,
                size: found.file_size,
                response,
            }),
            404 => Err(gone()),
            status => Err(Error::provider(
                None,
                format!("HTTP {status} downloading the media"),
            )),
        }
    }

    /// The token goes where it was entered for (the API base URL's origin) and, for Meta's own
    /// Graph API, to Meta's media host.
    fn token_may_go_to(&self, url: &str) -> bool {
        let (Ok(target), Ok(base)) = (
            reqwest::Url::parse(url),
            reqwest::Url::parse(&self.base_url),
        ) else {
            return false;
        };
        let same_origin = target.scheme() == base.scheme()
            && target.host_str() == base.host_str()
            && target.port_or_known_default() == base.port_or_known_default();
        let meta_media = base.host_str() == Some("graph.facebook.com")
            && target.scheme() == "https"
            && target
                .host_str()
                .is_some_and(|h| h.ends_with(META_MEDIA_HOST_SUFFIX));
        same_origin || meta_media
    }
}

/// A file for `POST /{phone-number-id}/media`: its MIME type (one of
/// `content::media_types`), a file name, and its bytes as they arrive.
pub struct MediaUpload {
    pub mime_type: String,
    pub filename: String,
    pub length: u64,
    pub body: reqwest::Body,
}

#[derive(Deserialize)]
struct UploadedMedia {
    id: String,
}

impl CloudApi<'_> {
    /// Uploads a file to Meta's media store for this phone number ("Media" reference: upload
    /// media; a multipart form of `messaging_product`, `type` and `file`) and answers its media
    /// id, which a message then names instead of a link. Meta keeps it 30 days. Errors:
    /// PROVIDER_ERROR when Meta refuses the file or cannot be reached.
    pub async fn upload_media(&self, upload: MediaUpload) -> Result<String, Error> {
        let file = reqwest::multipart::Part::stream_with_length(upload.body, upload.length)
            .file_name(upload.filename)
            .mime_str(&upload.mime_type)
            .map_err(|e| Error::provider(None, format!("the MIME type is not valid: {e}")))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", upload.mime_type)
            .part("file", file);
        let url = format!("{}/{}/media", self.base_url, self.phone_number_id);
        let request = self
            .request(Method::POST, &url)
            .map_err(|why| super::unreachable(why).error)?
            .timeout(TRANSFER_TIMEOUT)
            .multipart(form);
        let uploaded: UploadedMedia = self.answer(request).await.map_err(|r| r.error)?;
        Ok(uploaded.id)
    }
}

fn gone() -> Error {
    Error::NotFound("this media on Meta (kept 30 days after it was received)")
}

/// Meta answers an unknown or expired media id with error 100 (or 404).
fn gone_or(refusal: Refusal) -> Error {
    match refusal.code.as_deref() {
        Some("100") => gone(),
        _ if refusal.message.contains("HTTP 404") => gone(),
        _ => refusal.error,
    }
}
