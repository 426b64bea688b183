//! Rich messages inside the 24-hour window: media (image, video, audio, document, sticker), a
//! location, interactive reply buttons and lists, and reactions. Shapes and limits are Meta's:
//! WhatsApp Cloud API, "Messages" reference (media, location, interactive and reaction objects),
//! "Interactive reply buttons messages" and "Interactive list messages". Every limit is checked
//! here, before anything is stored or leaves, as `VALIDATION_FAILED` on the field
//! (`content.buttons.buttons[3]`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use waflow_entities::enums::MessageKind;

use crate::{
    content::template_parameters::{Location, Media, media_source},
    error::{Error, Result},
    validation::Problems,
};

/// A caption's limit (image, video, document), in characters.
pub const MAX_CAPTION_CHARS: usize = 1024;
/// Reply buttons per message.
pub const MAX_REPLY_BUTTONS: usize = 3;
/// Rows in a list message, across its sections; and sections.
pub const MAX_LIST_ROWS: usize = 10;

/// What a `sendMessage` or a `send_message` step sends: one of Meta's message kinds, written
/// `{"image": {...}}`, or a reaction to an earlier message, `{"reaction": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Reaction { reaction: Reaction },
    Rich(RichContent),
}

/// A message with content beyond text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum RichContent {
    Image(MediaMessage),
    Video(MediaMessage),
    Audio(MediaMessage),
    Document(MediaMessage),
    Sticker(MediaMessage),
    Location(Location),
    Buttons(ReplyButtons),
    List(ListMessage),
}

/// Media by public `link` or uploaded media `id` (one of the two). `caption`: image, video and
/// document, at most 1024 characters; `filename`: documents only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MediaMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// Up to three buttons the customer taps to answer; the tapped button's `id` comes back in their
/// `button_reply`. Body ≤ 1024 characters, footer and text header ≤ 60, titles ≤ 20 and unique,
/// ids ≤ 256 and unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplyButtons {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<InteractiveHeader>,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    pub buttons: Vec<ReplyButton>,
}

/// An interactive message's header: text or media.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum InteractiveHeader {
    Text(String),
    Image(Media),
    Video(Media),
    Document(Media),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

/// A menu behind a `button` (≤ 20 characters): 1 to 10 sections holding at most 10 rows in
/// all. Body ≤ 4096 characters, header and footer ≤ 60; a section title ≤ 24 (required when
/// there are several); a row's id ≤ 200 and unique, title ≤ 24, description ≤ 72.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    pub button: String,
    pub sections: Vec<ListSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An emoji on one of the conversation's messages (Waflow's message id); an empty emoji
/// removes the reaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reaction {
    pub message_id: Uuid,
    pub emoji: String,
}

impl RichContent {
    /// Meta's `type` for the message and the kind Waflow stores.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Image(_) => MessageKind::Image,
            Self::Video(_) => MessageKind::Video,
            Self::Audio(_) => MessageKind::Audio,
            Self::Document(_) => MessageKind::Document,
            Self::Sticker(_) => MessageKind::Sticker,
            Self::Location(_) => MessageKind::Location,
            Self::Buttons(_) | Self::List(_) => MessageKind::Interactive,
        }
    }

    /// What a person reads in the transcript.
    pub fn transcript(&self) -> String {
        match self {
            Self::Image(m) | Self::Video(m) | Self::Document(m) => m
                .caption
                .clone()
                .or_else(|| m.filename.clone())
                .unwrap_or_else(|| format!("[{}]", self.name())),
            Self::Audio(_) | Self::Sticker(_) => format!("[{}]", self.name()),
            Self::Location(l) => {
                let place = [l.name.as_deref(), l.address.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                match place.is_empty() {
                    true => format!("[location {}, {}]", l.latitude, l.longitude),
                    false => place,
                }
            }
            Self::Buttons(b) => b.body.clone(),
            Self::List(l) => l.body.clone(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Audio(_) => "audio",
            Self::Document(_) => "document",
            Self::Sticker(_) => "sticker",
            Self::Location(_) => "location",
            Self::Buttons(_) => "buttons",
            Self::List(_) => "list",
        }
    }

    /// Meta's limits, every problem at once, on fields under `content.<kind>`.
    pub fn check(&self) -> Result<()> {
        let mut problems = Problems::new();
        let at = format!("content.{}", self.name());
        match self {
            Self::Image(m)
            | Self::Video(m)
            | Self::Document(m)
            | Self::Audio(m)
            | Self::Sticker(m) => {
                check_media(&mut problems, &at, m.link.as_deref(), m.id.as_deref());
                let captioned = matches!(self, Self::Image(_) | Self::Video(_) | Self::Document(_));
                match (&m.caption, captioned) {
                    (Some(c), true) => {
                        problems.text(&format!("{at}.caption"), c, MAX_CAPTION_CHARS)
                    }
                    (Some(_), false) => problems.add(
                        format!("{at}.caption"),
                        "is for images, videos and documents only",
                    ),
                    (None, _) => {}
                }
                match (&m.filename, matches!(self, Self::Document(_))) {
                    (Some(f), true) => problems.text(&format!("{at}.filename"), f, 240),
                    (Some(_), false) => {
                        problems.add(format!("{at}.filename"), "is for documents only")
                    }
                    (None, _) => {}
                }
            }
            Self::Location(l) => problems.check(
                (-90.0..=90.0).contains(&l.latitude) && (-180.0..=180.0).contains(&l.longitude),
                at,
                "needs a latitude in −90..90 and a longitude in −180..180",
            ),
            Self::Buttons(b) => check_buttons(&mut problems, &at, b),
            Self::List(l) => check_list(&mut problems, &at, l),
        }
        problems.into_result()
    }
}

fn check_media(problems: &mut Problems, at: &str, link: Option<&str>, id: Option<&str>) {
    if let Err(problem) = media_source(link, id) {
        problems.add(at, format!("media {problem}"));
    }
}

fn check_buttons(problems: &mut Problems, at: &str, b: &ReplyButtons) {
    match &b.header {
        Some(InteractiveHeader::Text(text)) => {
            problems.text(&format!("{at}.header.text"), text, 60)
        }
        Some(
            InteractiveHeader::Image(m)
            | InteractiveHeader::Video(m)
            | InteractiveHeader::Document(m),
        ) => check_media(
            problems,
            &format!("{at}.header"),
            m.link.as_deref(),
            m.id.as_deref(),
        ),
        None => {}
    }
    problems.text(&format!("{at}.body"), &b.body, 1024);
    if let Some(footer) = &b.footer {
        problems.text(&format!("{at}.footer"), footer, 60);
    }
    problems.check(
        (1..=MAX_REPLY_BUTTONS).contains(&b.buttons.len()),
        format!("{at}.buttons"),
        format!("takes 1 to {MAX_REPLY_BUTTONS} buttons"),
    );
    for (i, button) in b.buttons.iter().enumerate() {
        let field = |name: &str| format!("{at}.buttons[{i}].{name}");
        problems.text(&field("id"), &button.id, 256);
        problems.text(&field("title"), &button.title, 20);
        let earlier = &b.buttons[..i];
        problems.check(
            !earlier.iter().any(|e| e.id == button.id),
            field("id"),
            "must be unique",
        );
        problems.check(
            !earlier.iter().any(|e| e.title == button.title),
            field("title"),
            "must be unique",
        );
    }
}

fn check_list(problems: &mut Problems, at: &str, l: &ListMessage) {
    if let Some(header) = &l.header {
        problems.text(&format!("{at}.header"), header, 60);
    }
    problems.text(&format!("{at}.body"), &l.body, 4096);
    if let Some(footer) = &l.footer {
        problems.text(&format!("{at}.footer"), footer, 60);
    }
    problems.text(&format!("{at}.button"), &l.button, 20);
    let rows: usize = l.sections.iter().map(|s| s.rows.len()).sum();
    problems.check(
        (1..=MAX_LIST_ROWS).contains(&l.sections.len()) && (1..=MAX_LIST_ROWS).contains(&rows),
        format!("{at}.sections"),
        format!("takes 1 to {MAX_LIST_ROWS} sections holding 1 to {MAX_LIST_ROWS} rows in all"),
    );
    let mut ids = Vec::new();
    for (s, section) in l.sections.iter().enumerate() {
        let at = format!("{at}.sections[{s}]");
        match &section.title {
            Some(title) => problems.text(&format!("{at}.title"), title, 24),
            None if l.sections.len() > 1 => problems.add(
                format!("{at}.title"),
                "is required when there are several sections",
            ),
            None => {}
        }
        problems.check(
            !section.rows.is_empty(),
            format!("{at}.rows"),
            "takes at least one row",
        );
        for (r, row) in section.rows.iter().enumerate() {
            let field = |name: &str| format!("{at}.rows[{r}].{name}");
            problems.text(&field("id"), &row.id, 200);
            problems.text(&field("title"), &row.title, 24);
            if let Some(description) = &row.description {
                problems.text(&field("description"), description, 72);
            }
            problems.check(
                !ids.contains(&&row.id),
                field("id"),
                "must be unique in the list",
            );
            ids.push(&row.id);
        }
    }
}

impl Reaction {
    /// An emoji (or empty, to remove the reaction): no letters, digits or spaces, at most a few
    /// code points (a flag or a skin-toned emoji is several).
    pub fn check(&self) -> Result<()> {
        let ok = self.emoji.chars().count() <= 10
            && !self
                .emoji
                .chars()
                .any(|c| c.is_alphanumeric() || c.is_whitespace());
        if ok {
            Ok(())
        } else {
            Err(Error::field(
                "content.reaction.emoji",
                "must be one emoji, or empty to remove the reaction",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(content: serde_json::Value) -> Vec<String> {
        let content: RichContent = serde_json::from_value(content).unwrap();
        match content.check() {
            Ok(()) => vec![],
            Err(Error::Validation(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn media_takes_a_source_and_the_fields_of_its_kind() {
        assert!(
            fields(json!({"image": {"link": "https://a.example/x.jpg", "caption": "Hi"}}))
                .is_empty()
        );
        assert!(
            fields(json!({"document": {"id": "123", "filename": "a.pdf", "caption": "A"}}))
                .is_empty()
        );
        assert_eq!(fields(json!({"image": {}})), ["content.image"]);
        assert_eq!(
            fields(json!({"video": {"link": "x", "id": "1"}})),
            ["content.video"]
        );
        assert_eq!(
            fields(json!({"audio": {"id": "1", "caption": "c", "filename": "f"}})),
            ["content.audio.caption", "content.audio.filename"]
        );
        assert_eq!(
            fields(json!({"image": {"id": "1", "caption": "x".repeat(1025)}})),
            ["content.image.caption"]
        );
        assert_eq!(
            fields(json!({"sticker": {"link": "ftp://a.example/s.webp"}})),
            ["content.sticker"]
        );
    }

    #[test]
    fn reply_buttons_follow_meta_s_limits() {
        let button = |id: &str, title: &str| json!({"id": id, "title": title});
        assert!(fields(json!({"buttons": {"body": "Pick one", "buttons": [button("a", "Yes"), button("b", "No")]}})).is_empty());
        assert_eq!(
            fields(
                json!({"buttons": {"body": "Pick", "buttons": [button("a", "1"), button("b", "2"), button("c", "3"), button("d", "4")]}})
            ),
            ["content.buttons.buttons"]
        );
        assert_eq!(
            fields(json!({"buttons": {"body": "Pick", "buttons": []}})),
            ["content.buttons.buttons"]
        );
        assert_eq!(
            fields(
                json!({"buttons": {"body": "Pick", "footer": "f".repeat(61), "header": {"text": ""},
                "buttons": [button("a", "x".repeat(21).as_str()), button("a", "Same"), button("c", "Same")]}})
            ),
            [
                "content.buttons.header.text",
                "content.buttons.footer",
                "content.buttons.buttons[0].title",
                "content.buttons.buttons[1].id",
                "content.buttons.buttons[2].title"
            ]
        );
        assert_eq!(
            fields(
                json!({"buttons": {"body": "x".repeat(1025), "header": {"image": {}}, "buttons": [button("a", "A")]}})
            ),
            ["content.buttons.header", "content.buttons.body"]
        );
    }

    #[test]
    fn lists_follow_meta_s_limits() {
        let row = |id: usize| json!({"id": format!("r{id}"), "title": format!("Row {id}")});
        let ten: Vec<_> = (0..10).map(row).collect();
        assert!(
            fields(
                json!({"list": {"body": "Menu", "button": "Open", "sections": [{"rows": ten}]}})
            )
            .is_empty()
        );
        let eleven: Vec<_> = (0..11).map(row).collect();
        assert_eq!(
            fields(
                json!({"list": {"body": "Menu", "button": "Open", "sections": [{"rows": eleven}]}})
            ),
            ["content.list.sections"]
        );
        assert_eq!(
            fields(
                json!({"list": {"body": "Menu", "button": "Open the whole menu now", "sections": [
                {"rows": [row(1)]},
                {"title": "t".repeat(25), "rows": [row(1), {"id": "x", "title": "T", "description": "d".repeat(73)}]}]}})
            ),
            [
                "content.list.button",
                "content.list.sections[0].title",
                "content.list.sections[1].title",
                "content.list.sections[1].rows[0].id",
                "content.list.sections[1].rows[1].description"
            ]
        );
    }

    #[test]
    fn locations_and_reactions() {
        assert!(
            fields(json!({"location": {"latitude": -33.9, "longitude": 18.4, "name": "Office"}}))
                .is_empty()
        );
        assert_eq!(
            fields(json!({"location": {"latitude": 95.0, "longitude": 0.0}})),
            ["content.location"]
        );
        let reaction = |emoji: &str| Reaction {
            message_id: Uuid::nil(),
            emoji: emoji.into(),
        };
        for fine in ["👍", "", "👍🏽", "🇲🇽"] {
            reaction(fine).check().unwrap();
        }
        for wrong in ["ok", "👍 👍", "1"] {
            reaction(wrong).check().unwrap_err();
        }
    }

    #[test]
    fn content_reads_as_a_kind_or_a_reaction() {
        let reaction: MessageContent = serde_json::from_value(json!({"reaction": {
            "messageId": Uuid::nil(), "emoji": "👍"}}))
        .unwrap();
        assert!(matches!(reaction, MessageContent::Reaction { .. }));
        let image: MessageContent = serde_json::from_value(json!({"image": {"id": "1"}})).unwrap();
        assert!(matches!(image, MessageContent::Rich(RichContent::Image(_))));
        assert!(serde_json::from_value::<MessageContent>(json!({"gif": {"id": "1"}})).is_err());
    }
}
