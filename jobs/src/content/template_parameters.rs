//! The parameters a template send gives besides the body's: the header's (text, image, video,
//! document, location) and the buttons' (a URL's dynamic suffix, a quick reply's payload, a
//! copy-code button's coupon code, an authentication template's one-time password).
//!
//! [`pair`] checks them against the template's components the way Meta does, before any request
//! leaves: a missing, surplus or wrong-kind parameter, or one past Meta's limits, is refused
//! with `TEMPLATE_VARIABLES_MISMATCH` naming the component. Source: WhatsApp Cloud API,
//! "Template messages" and its "components" and "parameters" objects; "Coupon code templates";
//! "Authentication templates".

use serde::{Deserialize, Serialize};
use waflow_entities::enums::{ButtonType, HeaderFormat};

use super::template_components::Components;
use crate::{error::Error, placeholders::Placeholders};

/// Meta's limit for a text header, its parameter included (characters).
pub const MAX_HEADER_TEXT_CHARS: usize = 60;
/// Meta's limit for a copy-code button's coupon code (characters, letters and digits only).
pub const MAX_COUPON_CODE_CHARS: usize = 20;
/// Meta's limit for a one-time password (characters).
pub const MAX_OTP_CHARS: usize = 15;
/// Meta's limit for a URL button's URL once its suffix is filled in (characters).
pub const MAX_BUTTON_URL_CHARS: usize = 2000;

/// Values for a template's header and buttons, as a send, a flow step or a campaign gives them.
/// Every string may be a `{{ }}` template in flows and campaigns (see [`Self::strings_mut`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderParameter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<ButtonParameter>,
}

/// The header's one parameter: Meta's parameter types `text`, `image`, `video`, `document`,
/// `location`. Written `{"image": {"link": "https://…"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum HeaderParameter {
    Text(String),
    Image(Media),
    Video(Media),
    Document(Media),
    Location(Location),
}

/// A media object: a public `link` Meta downloads, or the `id` of media uploaded to Meta. A
/// document may carry the `filename` the customer sees.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Media {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A location header: degrees (latitude −90..90, longitude −180..180), with an optional name
/// and address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A value for the template's button at `index` (zero-based, in the template's order): `text`
/// for a URL button's dynamic suffix or an OTP button's code, `payload` for a quick reply,
/// `couponCode` for a copy-code button. Exactly one is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ButtonParameter {
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
}

/// A header parameter ready to send, with the placeholder it fills (empty for media).
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderValue {
    pub placeholder: String,
    pub parameter: HeaderParameter,
}

/// What a button carries in the request: its index and its parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ButtonValue {
    pub index: usize,
    pub parameter: ButtonPayload,
}

/// Meta's button parameter types; each has one `sub_type`: `text` goes with `url` (a URL's
/// suffix, or an OTP button's code, which Meta sends as a URL button), `payload` with
/// `quick_reply`, `coupon_code` with `copy_code`.
#[derive(Debug, Clone, PartialEq)]
pub enum ButtonPayload {
    Text(String),
    Payload(String),
    CouponCode(String),
}

/// The header and buttons of a send, checked against the template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paired {
    pub header: Option<HeaderValue>,
    pub buttons: Vec<ButtonValue>,
}

impl TemplateParameters {
    /// Every string a user wrote, with where it is (`header.image.link`, `buttons[0].text`), so
    /// flows and campaigns can render their `{{ }}` in place.
    pub fn strings_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut out = Vec::new();
        if let Some(header) = &mut self.header {
            match header {
                HeaderParameter::Text(text) => out.push(("header.text".to_owned(), text)),
                HeaderParameter::Image(m) => media_strings(&mut out, m, "header.image"),
                HeaderParameter::Video(m) => media_strings(&mut out, m, "header.video"),
                HeaderParameter::Document(m) => media_strings(&mut out, m, "header.document"),
                HeaderParameter::Location(l) => {
                    for (name, value) in [("name", &mut l.name), ("address", &mut l.address)] {
                        if let Some(v) = value {
                            out.push((format!("header.location.{name}"), v));
                        }
                    }
                }
            }
        }
        for (i, b) in self.buttons.iter_mut().enumerate() {
            for (name, value) in [
                ("text", &mut b.text),
                ("payload", &mut b.payload),
                ("couponCode", &mut b.coupon_code),
            ] {
                if let Some(v) = value {
                    out.push((format!("buttons[{i}].{name}"), v));
                }
            }
        }
        out
    }
}

fn media_strings<'a>(out: &mut Vec<(String, &'a mut String)>, m: &'a mut Media, at: &str) {
    for (name, value) in [
        ("link", &mut m.link),
        ("id", &mut m.id),
        ("filename", &mut m.filename),
    ] {
        if let Some(v) = value {
            out.push((format!("{at}.{name}"), v));
        }
    }
}

/// A component's parameter is wrong: the component, and what is wrong in a user's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub component: String,
    pub problem: String,
}

impl Mismatch {
    fn new(component: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            problem: problem.into(),
        }
    }

    /// As the error a user sees for template `name`.
    pub fn into_error(self, name: &str) -> Error {
        Error::TemplateParameterInvalid {
            name: name.to_owned(),
            component: self.component,
            problem: self.problem,
        }
    }
}

/// Pairs `given` with the header and buttons of `components`: exactly the parameters they need,
/// each of the right kind and within Meta's limits.
pub fn pair(components: &Components, given: &TemplateParameters) -> Result<Paired, Mismatch> {
    pair_to(components, given, Check::Full)
}

/// Whether `given` has the parameters `components` need, of the right kinds, leaving the values
/// unchecked: for templates (`{{ contact.attributes.code }}`) checked before they are rendered.
pub fn check_shape(components: &Components, given: &TemplateParameters) -> Result<(), Mismatch> {
    pair_to(components, given, Check::Shape).map(|_| ())
}

/// How much of a parameter [`pair_to`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Presence and kind.
    Shape,
    /// Presence, kind and Meta's limits on the value.
    Full,
}

fn pair_to(
    components: &Components,
    given: &TemplateParameters,
    check: Check,
) -> Result<Paired, Mismatch> {
    Ok(Paired {
        header: pair_header(components, given.header.as_ref(), check)?,
        buttons: pair_buttons(components, &given.buttons, check)?,
    })
}

fn pair_header(
    components: &Components,
    given: Option<&HeaderParameter>,
    check: Check,
) -> Result<Option<HeaderValue>, Mismatch> {
    let format = components.header.as_ref().map(|h| h.format);
    let placeholder = components
        .header
        .as_ref()
        .and_then(|h| h.text.as_deref())
        .and_then(|t| Placeholders::parse(t).ok())
        .and_then(|p| p.names.into_iter().next());
    let needs = match (format, &placeholder) {
        (None, _) => None,
        (Some(HeaderFormat::Text), None) => None,
        (Some(HeaderFormat::Text), Some(_)) => {
            Some("a text value for its placeholder (header.text)")
        }
        (Some(HeaderFormat::Image), _) => Some("an image (header.image)"),
        (Some(HeaderFormat::Video), _) => Some("a video (header.video)"),
        (Some(HeaderFormat::Document), _) => Some("a document (header.document)"),
        (Some(HeaderFormat::Location), _) => Some("a location (header.location)"),
    };
    let Some(parameter) = given else {
        return match needs {
            Some(needs) => Err(Mismatch::new("header", format!("needs {needs}"))),
            None => Ok(None),
        };
    };
    let Some(needs) = needs else {
        return Err(Mismatch::new(
            "header",
            "takes no parameter: the template's header has no placeholder or media",
        ));
    };
    let kind_matches = matches!(
        (format, parameter),
        (Some(HeaderFormat::Text), HeaderParameter::Text(_))
            | (Some(HeaderFormat::Image), HeaderParameter::Image(_))
            | (Some(HeaderFormat::Video), HeaderParameter::Video(_))
            | (Some(HeaderFormat::Document), HeaderParameter::Document(_))
            | (Some(HeaderFormat::Location), HeaderParameter::Location(_))
    );
    if !kind_matches {
        return Err(Mismatch::new(
            "header",
            format!("needs {needs}, not {}", kind_name(parameter)),
        ));
    }
    if check == Check::Full {
        check_header(components, parameter)?;
    }
    Ok(Some(HeaderValue {
        placeholder: placeholder.unwrap_or_default(),
        parameter: parameter.clone(),
    }))
}

fn kind_name(parameter: &HeaderParameter) -> &'static str {
    match parameter {
        HeaderParameter::Text(_) => "a text",
        HeaderParameter::Image(_) => "an image",
        HeaderParameter::Video(_) => "a video",
        HeaderParameter::Document(_) => "a document",
        HeaderParameter::Location(_) => "a location",
    }
}

/// Meta's limits on a header parameter of the right kind.
fn check_header(components: &Components, parameter: &HeaderParameter) -> Result<(), Mismatch> {
    let bad = |problem: String| Err(Mismatch::new("header", problem));
    match parameter {
        HeaderParameter::Text(value) => {
            let template = components
                .header
                .as_ref()
                .and_then(|h| h.text.as_deref())
                .unwrap_or_default();
            let filled = Placeholders::parse(template)
                .map(|p| {
                    let values = p.names.into_iter().map(|n| (n, value.clone())).collect();
                    crate::placeholders::render(template, &values)
                })
                .unwrap_or_default();
            if value.trim().is_empty() {
                return bad("text must not be empty".into());
            }
            if filled.chars().count() > MAX_HEADER_TEXT_CHARS {
                return bad(format!(
                    "text makes the header {} characters; WhatsApp allows {MAX_HEADER_TEXT_CHARS}",
                    filled.chars().count()
                ));
            }
            Ok(())
        }
        HeaderParameter::Image(media) | HeaderParameter::Video(media) => {
            if media.filename.is_some() {
                return bad("filename is for documents only".into());
            }
            check_media(media)
        }
        HeaderParameter::Document(media) => check_media(media),
        HeaderParameter::Location(l) => {
            if !(-90.0..=90.0).contains(&l.latitude) || !(-180.0..=180.0).contains(&l.longitude) {
                return bad(
                    "location needs a latitude in −90..90 and a longitude in −180..180".into(),
                );
            }
            Ok(())
        }
    }
}

fn check_media(media: &Media) -> Result<(), Mismatch> {
    media_source(media.link.as_deref(), media.id.as_deref())
        .map_err(|problem| Mismatch::new("header", format!("media {problem}")))
}

/// Where Meta takes media from: a public http(s) `link` it downloads, or the `id` of media
/// uploaded to it; exactly one. The problem, in words that follow "media".
pub fn media_source(link: Option<&str>, id: Option<&str>) -> Result<(), &'static str> {
    match (link, id) {
        (Some(_), Some(_)) => Err("takes a link or an id, not both"),
        (None, None) => Err("needs a link (a public https:// URL) or an uploaded media id"),
        (Some(link), None) => {
            let ok = (link.starts_with("https://") || link.starts_with("http://"))
                && reqwest::Url::parse(link).is_ok_and(|u| u.host().is_some())
                && !link.contains(char::is_whitespace);
            if ok {
                Ok(())
            } else {
                Err("link must be a public http:// or https:// URL")
            }
        }
        (None, Some(id)) if id.trim().is_empty() => Err("id must not be empty"),
        (None, Some(_)) => Ok(()),
    }
}

fn pair_buttons(
    components: &Components,
    given: &[ButtonParameter],
    check: Check,
) -> Result<Vec<ButtonValue>, Mismatch> {
    for (n, parameter) in given.iter().enumerate() {
        if parameter.index >= components.buttons.len() {
            return Err(Mismatch::new(
                format!("buttons[{}]", parameter.index),
                format!(
                    "does not exist: the template has {} button(s)",
                    components.buttons.len()
                ),
            ));
        }
        if given[..n].iter().any(|p| p.index == parameter.index) {
            return Err(Mismatch::new(
                format!("buttons[{}]", parameter.index),
                "is given twice",
            ));
        }
    }
    let mut out = Vec::new();
    for (index, button) in components.buttons.iter().enumerate() {
        let component = format!("buttons[{index}] ({})", button_kind(button.r#type));
        let parameter = given.iter().find(|p| p.index == index);
        if let Some(parameter) =
            pair_button(button, parameter, check).map_err(|p| Mismatch::new(component, p))?
        {
            out.push(ButtonValue { index, parameter });
        }
    }
    Ok(out)
}

fn button_kind(kind: ButtonType) -> String {
    serde_json::json!(kind)
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// One button's parameter: what it needs, refused when it is missing, surplus or of the wrong
/// kind, and (with [`Check::Full`]) past Meta's limits.
fn pair_button(
    button: &super::template_components::Button,
    given: Option<&ButtonParameter>,
    check: Check,
) -> Result<Option<ButtonPayload>, String> {
    let (text, payload, coupon) = match given {
        Some(p) => (p.text.as_ref(), p.payload.as_ref(), p.coupon_code.as_ref()),
        None => (None, None, None),
    };
    let given_count = [text, payload, coupon].iter().flatten().count();
    if given_count > 1 {
        return Err("takes one of text, payload or couponCode".into());
    }
    let dynamic_url = button.url.as_deref().is_some_and(|u| u.contains("{{"));
    let value = match button.r#type {
        ButtonType::Url if dynamic_url => match text {
            Some(suffix) => Some(ButtonPayload::Text(suffix.clone())),
            None => return Err("needs the URL's dynamic suffix (text)".into()),
        },
        ButtonType::Otp => match text {
            Some(code) => Some(ButtonPayload::Text(code.clone())),
            None => return Err("needs the one-time password (text)".into()),
        },
        ButtonType::CopyCode => match coupon {
            Some(code) => Some(ButtonPayload::CouponCode(code.clone())),
            None => return Err("needs the coupon code (couponCode)".into()),
        },
        ButtonType::QuickReply => match (text, coupon, payload) {
            (None, None, payload) => payload.map(|p| ButtonPayload::Payload(p.clone())),
            _ => return Err("takes a payload only".into()),
        },
        ButtonType::Url
        | ButtonType::PhoneNumber
        | ButtonType::Flow
        | ButtonType::Catalog
        | ButtonType::Mpm
        | ButtonType::VoiceCall => match given_count {
            0 => None,
            _ => return Err("takes no parameter".into()),
        },
    };
    if let (Check::Full, Some(value)) = (check, &value) {
        check_button_value(button, value)?;
    }
    Ok(value)
}

/// Meta's limits on a button's value.
fn check_button_value(
    button: &super::template_components::Button,
    value: &ButtonPayload,
) -> Result<(), String> {
    match (button.r#type, value) {
        (_, ButtonPayload::Text(t) | ButtonPayload::Payload(t)) if t.trim().is_empty() => {
            Err("value must not be empty".into())
        }
        (ButtonType::Url, ButtonPayload::Text(suffix)) => {
            let url = button.url.as_deref().unwrap_or_default();
            let length = url.chars().count() - url_placeholder_len(url) + suffix.chars().count();
            if length > MAX_BUTTON_URL_CHARS {
                return Err(format!(
                    "URL would be {length} characters; WhatsApp allows {MAX_BUTTON_URL_CHARS}"
                ));
            }
            Ok(())
        }
        (ButtonType::Otp, ButtonPayload::Text(code)) if code.chars().count() > MAX_OTP_CHARS => {
            Err(format!(
                "one-time password may be at most {MAX_OTP_CHARS} characters"
            ))
        }
        (_, ButtonPayload::CouponCode(code)) => {
            let ok = (1..=MAX_COUPON_CODE_CHARS).contains(&code.chars().count())
                && code.chars().all(|c| c.is_ascii_alphanumeric());
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "coupon code must be 1 to {MAX_COUPON_CODE_CHARS} letters and digits"
                ))
            }
        }
        _ => Ok(()),
    }
}

/// The length of the `{{1}}` in a URL button's URL.
fn url_placeholder_len(url: &str) -> usize {
    url.find("{{")
        .and_then(|start| url[start..].find("}}").map(|end| end + 2))
        .unwrap_or(0)
}

impl HeaderValue {
    /// Meta's `parameter_name` for a named placeholder (`{{sale_date}}`); none for `{{1}}` or
    /// media.
    pub fn parameter_name(&self) -> Option<&str> {
        let named =
            !self.placeholder.is_empty() && !self.placeholder.chars().all(|c| c.is_ascii_digit());
        named.then_some(self.placeholder.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::template_components::{Button, Header};

    fn template(header: Option<(HeaderFormat, Option<&str>)>, buttons: Vec<Button>) -> Components {
        Components {
            header: header.map(|(format, text)| Header {
                format,
                text: text.map(str::to_owned),
                example: None,
            }),
            body: "Order {{1}}".into(),
            footer: None,
            buttons,
            body_examples: vec![],
        }
    }

    fn button(kind: ButtonType, url: Option<&str>) -> Button {
        Button {
            r#type: kind,
            text: "Tap".into(),
            url: url.map(str::to_owned),
            phone_number: None,
            example: None,
        }
    }

    fn link(url: &str) -> Media {
        Media {
            link: Some(url.into()),
            ..Media::default()
        }
    }

    fn header_only(h: HeaderParameter) -> TemplateParameters {
        TemplateParameters {
            header: Some(h),
            buttons: vec![],
        }
    }

    fn refused(c: &Components, given: &TemplateParameters) -> Mismatch {
        pair(c, given).expect_err(&format!("{given:?} was accepted"))
    }

    /// Each header kind takes its own parameter and no other; a header without a placeholder
    /// or media takes none.
    #[test]
    fn a_header_takes_its_own_kind() {
        let location = Location {
            latitude: 19.43,
            longitude: -99.13,
            name: Some("Store".into()),
            address: None,
        };
        let cases = [
            (
                HeaderFormat::Image,
                None,
                HeaderParameter::Image(link("https://cdn.example.com/a.jpg")),
            ),
            (
                HeaderFormat::Video,
                None,
                HeaderParameter::Video(link("https://cdn.example.com/a.mp4")),
            ),
            (
                HeaderFormat::Document,
                None,
                HeaderParameter::Document(Media {
                    id: Some("1234".into()),
                    filename: Some("invoice.pdf".into()),
                    link: None,
                }),
            ),
            (
                HeaderFormat::Location,
                None,
                HeaderParameter::Location(location),
            ),
            (
                HeaderFormat::Text,
                Some("Hi {{1}}"),
                HeaderParameter::Text("Ana".into()),
            ),
        ];
        for (format, text, parameter) in &cases {
            let c = template(Some((*format, *text)), vec![]);
            let paired = pair(&c, &header_only(parameter.clone())).unwrap();
            assert_eq!(paired.header.unwrap().parameter, *parameter);
            let missing = refused(&c, &TemplateParameters::default());
            assert_eq!(missing.component, "header");
            assert!(missing.problem.starts_with("needs "), "{missing:?}");
            for (_, _, other) in cases.iter().filter(|(f, ..)| f != format) {
                let wrong = refused(&c, &header_only(other.clone()));
                assert!(wrong.problem.contains(", not "), "{wrong:?}");
            }
        }
        for c in [
            template(None, vec![]),
            template(Some((HeaderFormat::Text, Some("Your order"))), vec![]),
        ] {
            assert_eq!(
                pair(&c, &TemplateParameters::default()).unwrap(),
                Paired::default()
            );
            let surplus = refused(&c, &header_only(HeaderParameter::Text("x".into())));
            assert!(
                surplus.problem.starts_with("takes no parameter"),
                "{surplus:?}"
            );
        }
    }

    #[test]
    fn header_limits_are_meta_s() {
        let text = template(
            Some((HeaderFormat::Text, Some("Order {{1}} is ready"))),
            vec![],
        );
        let fits = "x".repeat(MAX_HEADER_TEXT_CHARS - "Order  is ready".len());
        pair(&text, &header_only(HeaderParameter::Text(fits.clone()))).unwrap();
        let long = refused(
            &text,
            &header_only(HeaderParameter::Text(format!("{fits}x"))),
        );
        assert!(long.problem.contains("60"), "{long:?}");
        refused(&text, &header_only(HeaderParameter::Text(" ".into())));

        let image = template(Some((HeaderFormat::Image, None)), vec![]);
        for media in [
            Media::default(),
            Media {
                link: Some("https://a.example/x.jpg".into()),
                id: Some("1".into()),
                filename: None,
            },
            link("ftp://a.example/x.jpg"),
            link("https://"),
            link("not a url"),
            Media {
                filename: Some("x.jpg".into()),
                ..link("https://a.example/x.jpg")
            },
        ] {
            refused(&image, &header_only(HeaderParameter::Image(media)));
        }
        let place = template(Some((HeaderFormat::Location, None)), vec![]);
        for (latitude, longitude) in [(91.0, 0.0), (0.0, -180.5), (f64::NAN, 0.0)] {
            let l = Location {
                latitude,
                longitude,
                name: None,
                address: None,
            };
            refused(&place, &header_only(HeaderParameter::Location(l)));
        }
    }

    fn with_button(index: usize, f: impl FnOnce(&mut ButtonParameter)) -> TemplateParameters {
        let mut b = ButtonParameter {
            index,
            ..ButtonParameter::default()
        };
        f(&mut b);
        TemplateParameters {
            header: None,
            buttons: vec![b],
        }
    }

    /// The URL button, and every other kind: what each needs, takes and refuses.
    #[test]
    fn each_button_kind_takes_what_meta_sends() {
        let c = template(
            None,
            vec![
                button(
                    ButtonType::Url,
                    Some("https://shop.example.com/track/{{1}}"),
                ),
                button(ButtonType::QuickReply, None),
                button(ButtonType::CopyCode, None),
                button(ButtonType::PhoneNumber, None),
                button(ButtonType::Url, Some("https://shop.example.com/help")),
            ],
        );
        let all = TemplateParameters {
            header: None,
            buttons: vec![
                ButtonParameter {
                    index: 0,
                    text: Some("PX-1001".into()),
                    ..Default::default()
                },
                ButtonParameter {
                    index: 2,
                    coupon_code: Some("SAVE10".into()),
                    ..Default::default()
                },
            ],
        };
        let paired = pair(&c, &all).unwrap();
        assert_eq!(
            paired.buttons,
            vec![
                ButtonValue {
                    index: 0,
                    parameter: ButtonPayload::Text("PX-1001".into())
                },
                ButtonValue {
                    index: 2,
                    parameter: ButtonPayload::CouponCode("SAVE10".into())
                },
            ]
        );
        let mut with_payload = all.clone();
        with_payload.buttons.push(ButtonParameter {
            index: 1,
            payload: Some("stop-promos".into()),
            ..Default::default()
        });
        assert_eq!(pair(&c, &with_payload).unwrap().buttons.len(), 3);

        // The URL's suffix and the coupon code are required.
        let no_suffix = refused(&c, &with_button(2, |b| b.coupon_code = Some("A1".into())));
        assert_eq!(no_suffix.component, "buttons[0] (URL)");
        let no_code = refused(&c, &with_button(0, |b| b.text = Some("PX".into())));
        assert_eq!(no_code.component, "buttons[2] (COPY_CODE)");

        let bad = |index: usize, f: fn(&mut ButtonParameter), component: &str| {
            let mut given = all.clone();
            given.buttons.retain(|b| b.index != index);
            given.buttons.extend(with_button(index, f).buttons);
            let m = refused(&c, &given);
            assert_eq!(m.component, component, "{m:?}");
        };
        bad(0, |b| b.payload = Some("x".into()), "buttons[0] (URL)");
        bad(0, |b| b.text = Some(" ".into()), "buttons[0] (URL)");
        bad(0, |b| b.text = Some("x".repeat(2000)), "buttons[0] (URL)");
        bad(1, |b| b.text = Some("x".into()), "buttons[1] (QUICK_REPLY)");
        bad(
            1,
            |b| b.payload = Some(String::new()),
            "buttons[1] (QUICK_REPLY)",
        );
        bad(
            2,
            |b| b.coupon_code = Some("SAVE-10".into()),
            "buttons[2] (COPY_CODE)",
        );
        bad(
            2,
            |b| b.coupon_code = Some("A".repeat(21)),
            "buttons[2] (COPY_CODE)",
        );
        bad(
            3,
            |b| b.text = Some("x".into()),
            "buttons[3] (PHONE_NUMBER)",
        );
        bad(4, |b| b.text = Some("x".into()), "buttons[4] (URL)");
        bad(
            0,
            |b| {
                b.text = Some("x".into());
                b.payload = Some("y".into());
            },
            "buttons[0] (URL)",
        );
        bad(5, |b| b.text = Some("x".into()), "buttons[5]");

        let mut twice = all.clone();
        twice.buttons.push(all.buttons[0].clone());
        assert_eq!(refused(&c, &twice).problem, "is given twice");
    }

    #[test]
    fn an_otp_button_takes_the_code() {
        let c = template(None, vec![button(ButtonType::Otp, None)]);
        let paired = pair(&c, &with_button(0, |b| b.text = Some("482913".into()))).unwrap();
        assert_eq!(
            paired.buttons[0].parameter,
            ButtonPayload::Text("482913".into())
        );
        refused(&c, &TemplateParameters::default());
        refused(&c, &with_button(0, |b| b.text = Some("1".repeat(16))));
    }

    #[test]
    fn named_text_headers_carry_their_parameter_name() {
        let value = |placeholder: &str| HeaderValue {
            placeholder: placeholder.into(),
            parameter: HeaderParameter::Text("x".into()),
        };
        assert_eq!(value("sale_date").parameter_name(), Some("sale_date"));
        assert_eq!(value("1").parameter_name(), None);
        assert_eq!(value("").parameter_name(), None);
    }

    #[test]
    fn every_string_is_reachable_for_rendering() {
        let mut p: TemplateParameters = serde_json::from_value(serde_json::json!({
            "header": {"document": {"link": "{{a}}", "filename": "{{b}}"}},
            "buttons": [{"index": 0, "text": "{{c}}"}, {"index": 1, "couponCode": "{{d}}"}]
        }))
        .unwrap();
        let fields: Vec<String> = p.strings_mut().into_iter().map(|(at, _)| at).collect();
        assert_eq!(
            fields,
            [
                "header.document.link",
                "header.document.filename",
                "buttons[0].text",
                "buttons[1].couponCode"
            ]
        );
        let unknown = serde_json::from_value::<TemplateParameters>(
            serde_json::json!({"header": {"gif": {"link": "x"}}}),
        );
        assert!(unknown.is_err());
    }

    /// A campaign's values are templates until each recipient's are rendered: their presence
    /// and kinds are checked before, the limits after.
    #[test]
    fn the_shape_is_checked_before_the_values() {
        let c = template(
            Some((HeaderFormat::Image, None)),
            vec![button(ButtonType::CopyCode, None)],
        );
        let templated = TemplateParameters {
            header: Some(HeaderParameter::Image(link(
                "{{ contact.attributes.photo }}",
            ))),
            buttons: vec![ButtonParameter {
                index: 0,
                coupon_code: Some("{{ contact.attributes.code }}".into()),
                ..Default::default()
            }],
        };
        check_shape(&c, &templated).unwrap();
        refused(&c, &templated);
        let no_coupon = TemplateParameters {
            buttons: vec![],
            ..templated.clone()
        };
        assert_eq!(
            check_shape(&c, &no_coupon).unwrap_err().component,
            "buttons[0] (COPY_CODE)"
        );
        let video = TemplateParameters {
            header: Some(HeaderParameter::Video(link("{{ x }}"))),
            ..templated
        };
        assert_eq!(check_shape(&c, &video).unwrap_err().component, "header");
    }
}
