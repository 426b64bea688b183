//! The media WhatsApp carries: which MIME types, as which message kind, up to which size
//! (Cloud API reference, "Media" → "Supported media types"). Uploads are checked here before a
//! byte goes to Meta, so a file Meta would refuse is refused with the limit it broke.

use waflow_entities::enums::MessageKind;

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

/// One MIME type WhatsApp takes, and the most bytes Meta accepts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType {
    pub mime: &'static str,
    /// The usual file extension, for a file name when the client gives none.
    pub extension: &'static str,
    pub kind: MessageKind,
    pub max_bytes: u64,
}

/// A WebP sticker without animation: Meta's limit for it is lower than an animated one's.
pub const STATIC_STICKER_MAX_BYTES: u64 = 100 * KB;

const fn media(
    mime: &'static str,
    extension: &'static str,
    kind: MessageKind,
    max_bytes: u64,
) -> MediaType {
    MediaType {
        mime,
        extension,
        kind,
        max_bytes,
    }
}

/// Meta's table. `audio/ogg` is OPUS only; Meta lists 3GPP video both as `video/3gpp` and
/// `video/3gp`.
pub const MEDIA_TYPES: &[MediaType] = &[
    media("audio/aac", "aac", MessageKind::Audio, 16 * MB),
    media("audio/amr", "amr", MessageKind::Audio, 16 * MB),
    media("audio/mpeg", "mp3", MessageKind::Audio, 16 * MB),
    media("audio/mp4", "m4a", MessageKind::Audio, 16 * MB),
    media("audio/ogg", "ogg", MessageKind::Audio, 16 * MB),
    media("text/plain", "txt", MessageKind::Document, 100 * MB),
    media("application/pdf", "pdf", MessageKind::Document, 100 * MB),
    media(
        "application/vnd.ms-excel",
        "xls",
        MessageKind::Document,
        100 * MB,
    ),
    media(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
        MessageKind::Document,
        100 * MB,
    ),
    media("application/msword", "doc", MessageKind::Document, 100 * MB),
    media(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
        MessageKind::Document,
        100 * MB,
    ),
    media(
        "application/vnd.ms-powerpoint",
        "ppt",
        MessageKind::Document,
        100 * MB,
    ),
    media(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "pptx",
        MessageKind::Document,
        100 * MB,
    ),
    media("image/jpeg", "jpg", MessageKind::Image, 5 * MB),
    media("image/png", "png", MessageKind::Image, 5 * MB),
    media("image/webp", "webp", MessageKind::Sticker, 500 * KB),
    media("video/mp4", "mp4", MessageKind::Video, 16 * MB),
    media("video/3gpp", "3gp", MessageKind::Video, 16 * MB),
    media("video/3gp", "3gp", MessageKind::Video, 16 * MB),
];

/// The largest upload of any kind (a document).
pub const MAX_UPLOAD_BYTES: u64 = 100 * MB;

/// The media type of a `Content-Type` value (`audio/ogg; codecs=opus` is `audio/ogg`).
pub fn media_type(content_type: &str) -> Option<MediaType> {
    let mime = content_type.split(';').next()?.trim().to_ascii_lowercase();
    MEDIA_TYPES.iter().copied().find(|t| t.mime == mime)
}

/// Whether `bytes`, a WebP file, is animated: its extended header (`VP8X`) sets the animation
/// flag (WebP container specification, "Extended File Format").
pub fn webp_is_animated(bytes: &[u8]) -> bool {
    bytes.len() > 20
        && &bytes[0..4] == b"RIFF"
        && &bytes[8..16] == b"WEBPVP8X"
        && bytes[20] & 0x02 != 0
}

/// The most bytes Meta takes for a file of `media_type` whose first bytes are `head` (a
/// sticker's limit depends on whether it is animated).
pub fn max_bytes(media_type: MediaType, head: &[u8]) -> u64 {
    if media_type.kind == MessageKind::Sticker && !webp_is_animated(head) {
        STATIC_STICKER_MAX_BYTES
    } else {
        media_type.max_bytes
    }
}

/// The MIME types WhatsApp takes, for error messages.
pub fn accepted() -> String {
    MEDIA_TYPES
        .iter()
        .map(|t| t.mime)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webp(flags: u8) -> Vec<u8> {
        let mut bytes = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        bytes.push(flags);
        bytes.extend([0; 9]);
        bytes
    }

    #[test]
    fn kinds_and_limits_follow_metas_table() {
        let image = media_type("image/jpeg").unwrap();
        assert_eq!((image.kind, image.max_bytes), (MessageKind::Image, 5 << 20));
        let ogg = media_type("Audio/OGG; codecs=opus").unwrap();
        assert_eq!((ogg.kind, ogg.max_bytes), (MessageKind::Audio, 16 << 20));
        assert_eq!(media_type("application/pdf").unwrap().max_bytes, 100 << 20);
        assert_eq!(media_type("video/3gpp").unwrap().kind, MessageKind::Video);
        for refused in [
            "image/gif",
            "image/heic",
            "video/quicktime",
            "application/zip",
            "",
        ] {
            assert_eq!(media_type(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_static_sticker_has_the_lower_limit() {
        let sticker = media_type("image/webp").unwrap();
        assert_eq!(max_bytes(sticker, &webp(0x02)), 500 << 10);
        assert_eq!(max_bytes(sticker, &webp(0x10)), 100 << 10);
        assert_eq!(max_bytes(sticker, b"RIFF\0\0\0\0WEBPVP8 "), 100 << 10);
        let image = media_type("image/png").unwrap();
        assert_eq!(max_bytes(image, b""), 5 << 20);
    }
}
