//! Meta's WhatsApp Cloud API over HTTPS (reqwest). Requests carry the sender's access token as a
//! bearer token; `apiBaseUrl` (Meta's Graph API by default) is what tests point at a stand-in.
//! Meta's error codes are mapped to Waflow's here and nowhere else.

use std::time::Duration;

use reqwest::Method;

use serde::Deserialize;
use serde_json::{Value, json};
use waflow_entities::{
    enums::{
        ButtonType, HeaderFormat, ParameterFormat, QualityRating, TemplateCategory, TemplateStatus,
    },
    sender,
};

pub mod media;

use super::{Accepted, Content, Recipient, Refusal};
use crate::{
    Services,
    content::{
        rich_content::{InteractiveHeader, RichContent},
        template_components::{Button, Components, Header},
        template_parameters::{ButtonPayload, ButtonValue, HeaderParameter, HeaderValue, Media},
    },
    error::{Error, Result, WindowClosed},
};

/// How long one request to Meta may take before the send counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A sender's Cloud API connection with its decrypted credentials (kept only for the call).
pub struct CloudApi<'a> {
    egress: &'a crate::egress::Egress,
    base_url: String,
    phone_number_id: String,
    business_account_id: String,
    access_token: String,
}

/// The largest answer read from the Graph API (a page of 100 templates is far below): the base
/// URL is the workspace's to set.
const MAX_ANSWER: usize = 4 << 20;

/// Meta's error body: `{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"}}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: MetaError,
}

#[derive(Debug, Deserialize)]
pub struct MetaError {
    pub message: Option<String>,
    pub code: Option<i64>,
    pub error_data: Option<ErrorData>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorData {
    pub details: Option<String>,
}

impl MetaError {
    fn text(&self) -> String {
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| "unknown error".into());
        match self.error_data.as_ref().and_then(|d| d.details.as_ref()) {
            Some(details) if !message.contains(details.as_str()) => format!("{message}: {details}"),
            _ => message,
        }
    }
}

/// Meta's error code as the error a Waflow user sees by name.
pub fn map_error_code(code: Option<i64>, message: &str) -> Error {
    match code {
        Some(131047) => Error::OutsideWindow(WindowClosed { closed_at: None }),
        Some(132001) => Error::TemplateNotFound {
            name: String::new(),
            language: String::new(),
        },
        // Throughput (per number), pair rate (one customer), spam rate, and account-wide limits:
        // the wait Meta recommends grows with the scope of the limit.
        Some(130429) => Error::RateLimited {
            retry_after_seconds: 1,
        },
        Some(131056) => Error::RateLimited {
            retry_after_seconds: 6,
        },
        Some(131048) | Some(80007) => Error::RateLimited {
            retry_after_seconds: 60,
        },
        code => Error::Provider {
            code: code.map(|c| c.to_string()),
            message: format!("the WhatsApp Cloud API refused it: {message}"),
        },
    }
}

#[derive(Debug, Deserialize)]
struct SendResponse {
    messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
struct SentMessage {
    id: String,
}

/// What `GET /{phone-number-id}` tells about a number.
#[derive(Debug, Clone, Deserialize)]
pub struct PhoneNumberInfo {
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub quality_rating: Option<String>,
    pub status: Option<String>,
    pub messaging_limit_tier: Option<String>,
    pub name_status: Option<String>,
}

impl PhoneNumberInfo {
    pub fn quality(&self) -> QualityRating {
        parse_quality(self.quality_rating.as_deref())
    }
}

pub fn parse_quality(value: Option<&str>) -> QualityRating {
    match value.map(str::to_uppercase).as_deref() {
        Some("GREEN") | Some("HIGH") => QualityRating::Green,
        Some("YELLOW") | Some("MEDIUM") => QualityRating::Yellow,
        Some("RED") | Some("LOW") => QualityRating::Red,
        _ => QualityRating::Unknown,
    }
}

/// Meta's many template states, folded into Waflow's five.
pub fn parse_template_status(value: &str) -> TemplateStatus {
    match value.to_uppercase().as_str() {
        "APPROVED" => TemplateStatus::Approved,
        "REJECTED" => TemplateStatus::Rejected,
        "PAUSED" => TemplateStatus::Paused,
        "PENDING" | "IN_APPEAL" | "REINSTATED" => TemplateStatus::Pending,
        _ => TemplateStatus::Disabled,
    }
}

/// One template as Meta lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaTemplate {
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    pub status: String,
    pub category: Option<String>,
    #[serde(default)]
    pub components: Vec<Value>,
    pub rejected_reason: Option<String>,
}

impl MetaTemplate {
    pub fn category(&self) -> TemplateCategory {
        match self.category.as_deref().map(str::to_uppercase).as_deref() {
            Some("MARKETING") => TemplateCategory::Marketing,
            Some("AUTHENTICATION") => TemplateCategory::Authentication,
            _ => TemplateCategory::Utility,
        }
    }

    /// The components in Waflow's shape; button kinds Waflow does not model are left out.
    pub fn components(&self) -> Components {
        let mut out = Components {
            header: None,
            body: String::new(),
            footer: None,
            buttons: vec![],
            body_examples: vec![],
        };
        for component in &self.components {
            let text = component["text"].as_str().map(str::to_owned);
            match component["type"].as_str().map(str::to_uppercase).as_deref() {
                Some("HEADER") => {
                    let format = match component["format"]
                        .as_str()
                        .map(str::to_uppercase)
                        .as_deref()
                    {
                        Some("IMAGE") => HeaderFormat::Image,
                        Some("VIDEO") => HeaderFormat::Video,
                        Some("DOCUMENT") => HeaderFormat::Document,
                        Some("LOCATION") => HeaderFormat::Location,
                        _ => HeaderFormat::Text,
                    };
                    // Meta lists the review's sample as it was given: a value or a handle.
                    let example = ["header_text", "header_handle"]
                        .iter()
                        .find_map(|k| component["example"][k][0].as_str())
                        .or_else(|| {
                            component["example"]["header_text_named_params"][0]["example"].as_str()
                        })
                        .map(str::to_owned);
                    out.header = Some(Header {
                        format,
                        text,
                        example,
                    });
                }
                Some("BODY") => {
                    out.body = text.unwrap_or_default();
                    out.body_examples = body_examples(&component["example"]);
                }
                Some("FOOTER") => out.footer = text,
                Some("BUTTONS") => {
                    for button in component["buttons"].as_array().into_iter().flatten() {
                        let kind = match button["type"].as_str().map(str::to_uppercase).as_deref() {
                            Some("QUICK_REPLY") => ButtonType::QuickReply,
                            Some("URL") => ButtonType::Url,
                            Some("PHONE_NUMBER") => ButtonType::PhoneNumber,
                            Some("COPY_CODE") => ButtonType::CopyCode,
                            Some("OTP") => ButtonType::Otp,
                            Some("FLOW") => ButtonType::Flow,
                            Some("CATALOG") => ButtonType::Catalog,
                            Some("MPM") => ButtonType::Mpm,
                            Some("VOICE_CALL") => ButtonType::VoiceCall,
                            // A kind newer than Waflow: stored as one that takes no parameter,
                            // so the buttons after it keep their index.
                            _ => ButtonType::Flow,
                        };
                        out.buttons.push(Button {
                            r#type: kind,
                            text: button["text"].as_str().unwrap_or_default().to_owned(),
                            url: button["url"].as_str().map(str::to_owned),
                            phone_number: button["phone_number"].as_str().map(str::to_owned),
                            example: example_of(&button["example"]),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// A button's sample: Meta gives a string (COPY_CODE) or a list (URL).
fn example_of(example: &Value) -> Option<String> {
    match example {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn body_examples(example: &Value) -> Vec<String> {
    if let Some(first) = example["body_text"]
        .as_array()
        .and_then(|rows| rows.first())
        .and_then(Value::as_array)
    {
        return first
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
    }
    example["body_text_named_params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["example"].as_str().map(str::to_owned))
        .collect()
}

#[derive(Debug, Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<MetaTemplate>,
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    cursors: Option<Cursors>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Cursors {
    after: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreatedTemplate {
    pub id: String,
    pub status: Option<String>,
}

impl<'a> CloudApi<'a> {
    pub fn for_sender(services: &'a Services, sender: &sender::Model) -> Result<Self> {
        let secret = |value: &Option<String>, what: &str| -> Result<String> {
            let stored = value
                .as_deref()
                .ok_or_else(|| Error::Internal(format!("sender has no {what}")))?;
            services.secrets.decrypt(stored)
        };
        Ok(Self {
            egress: &services.egress,
            base_url: sender
                .api_base_url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            phone_number_id: sender.phone_number_id.clone().unwrap_or_default(),
            business_account_id: sender.business_account_id.clone().unwrap_or_default(),
            access_token: secret(&sender.access_token_enc, "access token")?,
        })
    }

    /// Sends one message; `messages[0].id` of Meta's answer becomes the provider message id.
    pub async fn send(
        &self,
        to: &Recipient,
        content: &Content,
        reply_to: Option<&str>,
    ) -> Result<Accepted, Refusal> {
        let body = message_body(to, content, reply_to);
        let url = format!("{}/{}/messages", self.base_url, self.phone_number_id);
        let response: SendResponse = self.call(Method::POST, url, Some(&body)).await?;
        let id = response
            .messages
            .into_iter()
            .next()
            .map(|m| m.id)
            .ok_or_else(|| no_answer("Meta answered 2xx without a message id".into()))?;
        Ok(Accepted {
            provider_message_id: id,
        })
    }

    pub async fn phone_number(&self) -> Result<PhoneNumberInfo, Refusal> {
        let url = format!(
            "{}/{}?fields=display_phone_number,verified_name,quality_rating,status,messaging_limit_tier,name_status",
            self.base_url, self.phone_number_id
        );
        self.call(Method::GET, url, None).await
    }

    /// Every template of the business account, following Meta's cursor paging.
    pub async fn list_templates(&self) -> Result<Vec<MetaTemplate>, Refusal> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        // Bounded: a business account has at most a few thousand templates.
        for _ in 0..100 {
            let mut url = format!(
                "{}/{}/message_templates?limit=100",
                self.base_url, self.business_account_id
            );
            if let Some(cursor) = &after {
                url.push_str("&after=");
                url.push_str(&urlencode(cursor));
            }
            let page: TemplatePage = self.call(Method::GET, url, None).await?;
            all.extend(page.data);
            // Only the cursor is used, never `paging.next` itself: the bearer token must not be
            // sent to an address taken from a response.
            match page
                .paging
                .filter(|p| p.next.is_some())
                .and_then(|p| p.cursors)
                .and_then(|c| c.after)
            {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        Ok(all)
    }

    /// Submits a template for Meta's review.
    pub async fn create_template(
        &self,
        name: &str,
        language: &str,
        category: TemplateCategory,
        components: &Components,
        format: ParameterFormat,
        variable_names: &[String],
    ) -> Result<CreatedTemplate, Refusal> {
        let body = json!({
            "name": name,
            "language": language,
            "category": category,
            "parameter_format": format,
            "components": match category {
                TemplateCategory::Authentication => authentication_components(components),
                _ => template_components(components, format, variable_names),
            },
        });
        let url = format!(
            "{}/{}/message_templates",
            self.base_url, self.business_account_id
        );
        self.call(Method::POST, url, Some(&body)).await
    }

    /// One request to the Graph API at the sender's base URL, through the egress policy.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: String,
        body: Option<&Value>,
    ) -> Result<T, Refusal> {
        let mut request = self.request(method, &url).map_err(unreachable)?;
        if let Some(body) = body {
            request = request.json(body);
        }
        self.answer(request).await
    }

    /// A request to `url` with the sender's token, or why the egress policy forbids the address.
    fn request(&self, method: Method, url: &str) -> Result<reqwest::RequestBuilder, String> {
        let request = self
            .egress
            .request(method, url)
            .map_err(|refused| refused.0)?;
        Ok(request
            .bearer_auth(&self.access_token)
            .timeout(REQUEST_TIMEOUT))
    }

    /// Sends `request` and reads Meta's answer: `T` on success, Meta's error as a refusal.
    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Refusal> {
        // Only a connection that was never made proves the request did not reach Meta.
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                unreachable(describe(e))
            } else {
                no_answer(describe(e))
            }
        })?;
        let status = response.status();
        let read = crate::egress::read_capped(response, MAX_ANSWER).await;
        if status.is_success() {
            // Meta said yes: whatever went wrong after that, the message may be on its way.
            let (bytes, _) = read.map_err(|e| no_answer(describe(e)))?;
            return serde_json::from_slice(&bytes).map_err(|e| {
                no_answer(format!(
                    "Meta answered {status} with an unreadable body: {e}"
                ))
            });
        }
        let (bytes, _) = read.map_err(|e| unreachable(describe(e)))?;
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => (body.error.code, body.error.text()),
            Err(_) => (None, format!("HTTP {status} from the WhatsApp Cloud API")),
        };
        Err(Refusal {
            error: map_error_code(code, &message),
            code: code.map(|c| c.to_string()),
            message,
            outcome_unknown: false,
        })
    }
}

/// A refusal without a code of Meta's: the request failed before Meta answered it, or its
/// answer made no sense.
fn refusal(message: String) -> Refusal {
    Refusal {
        error: Error::provider(None, message.clone()),
        code: None,
        message,
        outcome_unknown: false,
    }
}

/// The request never reached Meta (no connection, or the egress policy refused the address).
fn unreachable(why: String) -> Refusal {
    refusal(format!("cannot reach the WhatsApp Cloud API: {why}"))
}

/// The request went out and no usable answer came back: Meta may have taken it.
fn no_answer(why: String) -> Refusal {
    Refusal {
        outcome_unknown: true,
        ..refusal(format!("no answer from the WhatsApp Cloud API: {why}"))
    }
}

/// A reqwest error in a few words, without the URL (it names the phone number id).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else {
        crate::egress::describe(&e)
    }
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The documented JSON of `POST /{phone-number-id}/messages`, to `to`: `"to"` takes a
/// `wa_id`, `"recipient"` a business-scoped user id ("Business-scoped user IDs", Meta); a reply
/// names the message it answers in `context` ("Reply messages").
pub fn message_body(to: &Recipient, content: &Content, reply_to: Option<&str>) -> Value {
    let mut body = content_body(content);
    match to {
        Recipient::WaId(wa_id) => body["to"] = json!(wa_id),
        Recipient::UserId(user_id) => body["recipient"] = json!(user_id),
    }
    if let Some(message_id) = reply_to {
        body["context"] = json!({"message_id": message_id});
    }
    body
}

fn content_body(content: &Content) -> Value {
    match content {
        Content::Text(text) => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "type": "text",
            "text": {"preview_url": false, "body": text},
        }),
        Content::Template {
            name,
            language,
            format,
            values,
            header,
            buttons,
        } => {
            let mut template = json!({"name": name, "language": {"code": language}});
            let components = send_components(*format, values, header.as_ref(), buttons);
            if !components.is_empty() {
                template["components"] = Value::Array(components);
            }
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "type": "template",
                "template": template,
            })
        }
        Content::Rich(rich) => {
            let (kind, object) = rich_object(rich);
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "type": kind,
                kind: object,
            })
        }
        Content::Reaction { message_id, emoji } => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "type": "reaction",
            "reaction": {"message_id": message_id, "emoji": emoji},
        }),
    }
}

/// Meta's `type` and object for a rich message ("Messages" reference: media, location and
/// interactive objects).
fn rich_object(rich: &RichContent) -> (&'static str, Value) {
    let media = |link: &Option<String>, id: &Option<String>| {
        let mut object = serde_json::Map::new();
        for (key, value) in [("link", link), ("id", id)] {
            if let Some(v) = value {
                object.insert(key.to_owned(), json!(v));
            }
        }
        Value::Object(object)
    };
    let with = |mut object: Value, key: &str, value: &Option<String>| {
        if let Some(v) = value {
            object[key] = json!(v);
        }
        object
    };
    match rich {
        RichContent::Image(m) => ("image", with(media(&m.link, &m.id), "caption", &m.caption)),
        RichContent::Video(m) => ("video", with(media(&m.link, &m.id), "caption", &m.caption)),
        RichContent::Audio(m) => ("audio", media(&m.link, &m.id)),
        RichContent::Sticker(m) => ("sticker", media(&m.link, &m.id)),
        RichContent::Document(m) => {
            let object = with(media(&m.link, &m.id), "caption", &m.caption);
            ("document", with(object, "filename", &m.filename))
        }
        RichContent::Location(l) => {
            let object = json!({"latitude": l.latitude, "longitude": l.longitude});
            let object = with(object, "name", &l.name);
            ("location", with(object, "address", &l.address))
        }
        RichContent::Buttons(b) => {
            let buttons: Vec<Value> = b
                .buttons
                .iter()
                .map(|r| json!({"type": "reply", "reply": {"id": r.id, "title": r.title}}))
                .collect();
            let mut object = json!({"type": "button", "body": {"text": b.body},
                "action": {"buttons": buttons}});
            if let Some(header) = &b.header {
                object["header"] = match header {
                    InteractiveHeader::Text(text) => json!({"type": "text", "text": text}),
                    InteractiveHeader::Image(m) => {
                        json!({"type": "image", "image": media(&m.link, &m.id)})
                    }
                    InteractiveHeader::Video(m) => {
                        json!({"type": "video", "video": media(&m.link, &m.id)})
                    }
                    InteractiveHeader::Document(m) => {
                        let document = with(media(&m.link, &m.id), "filename", &m.filename);
                        json!({"type": "document", "document": document})
                    }
                };
            }
            if let Some(footer) = &b.footer {
                object["footer"] = json!({"text": footer});
            }
            ("interactive", object)
        }
        RichContent::List(l) => {
            let sections: Vec<Value> = l
                .sections
                .iter()
                .map(|s| {
                    let rows: Vec<Value> = s
                        .rows
                        .iter()
                        .map(|r| {
                            with(
                                json!({"id": r.id, "title": r.title}),
                                "description",
                                &r.description,
                            )
                        })
                        .collect();
                    with(json!({"rows": rows}), "title", &s.title)
                })
                .collect();
            let mut object = json!({"type": "list", "body": {"text": l.body},
                "action": {"button": l.button, "sections": sections}});
            if let Some(header) = &l.header {
                object["header"] = json!({"type": "text", "text": header});
            }
            if let Some(footer) = &l.footer {
                object["footer"] = json!({"text": footer});
            }
            ("interactive", object)
        }
    }
}

/// A send's `components`: the header's parameter, the body's, then one entry per button that
/// takes one ("Template messages", Cloud API: components and parameter objects).
fn send_components(
    format: ParameterFormat,
    values: &[(String, String)],
    header: Option<&HeaderValue>,
    buttons: &[ButtonValue],
) -> Vec<Value> {
    let mut components = Vec::new();
    if let Some(header) = header {
        components.push(json!({"type": "header", "parameters": [header_parameter(header)]}));
    }
    let body: Vec<Value> = values
        .iter()
        .map(|(name, text)| match format {
            ParameterFormat::Positional => json!({"type": "text", "text": text}),
            ParameterFormat::Named => {
                json!({"type": "text", "parameter_name": name, "text": text})
            }
        })
        .collect();
    if !body.is_empty() {
        components.push(json!({"type": "body", "parameters": body}));
    }
    for button in buttons {
        let (sub_type, parameter) = match &button.parameter {
            ButtonPayload::Text(text) => ("url", json!({"type": "text", "text": text})),
            ButtonPayload::Payload(payload) => (
                "quick_reply",
                json!({"type": "payload", "payload": payload}),
            ),
            ButtonPayload::CouponCode(code) => (
                "copy_code",
                json!({"type": "coupon_code", "coupon_code": code}),
            ),
        };
        components.push(json!({"type": "button", "sub_type": sub_type,
            "index": button.index.to_string(), "parameters": [parameter]}));
    }
    components
}

fn header_parameter(header: &HeaderValue) -> Value {
    let media = |m: &Media| {
        let mut object = serde_json::Map::new();
        for (key, value) in [("link", &m.link), ("id", &m.id), ("filename", &m.filename)] {
            if let Some(v) = value {
                object.insert(key.to_owned(), json!(v));
            }
        }
        Value::Object(object)
    };
    match &header.parameter {
        HeaderParameter::Text(text) => match header.parameter_name() {
            Some(name) => json!({"type": "text", "parameter_name": name, "text": text}),
            None => json!({"type": "text", "text": text}),
        },
        HeaderParameter::Image(m) => json!({"type": "image", "image": media(m)}),
        HeaderParameter::Video(m) => json!({"type": "video", "video": media(m)}),
        HeaderParameter::Document(m) => json!({"type": "document", "document": media(m)}),
        HeaderParameter::Location(l) => {
            let mut location = json!({"latitude": l.latitude, "longitude": l.longitude});
            if let Some(name) = &l.name {
                location["name"] = json!(name);
            }
            if let Some(address) = &l.address {
                location["address"] = json!(address);
            }
            json!({"type": "location", "location": location})
        }
    }
}

/// An AUTHENTICATION template as Meta creates it: Meta writes the body's text itself, so the
/// request carries none ("Authentication templates": a BODY with
/// `add_security_recommendation`, and the OTP button's `otp_type`).
fn authentication_components(c: &Components) -> Vec<Value> {
    let buttons: Vec<Value> = c
        .buttons
        .iter()
        .filter(|b| b.r#type == ButtonType::Otp)
        .map(|b| json!({"type": "OTP", "otp_type": "COPY_CODE", "text": b.text}))
        .collect();
    vec![
        json!({"type": "BODY", "add_security_recommendation": false}),
        json!({"type": "BUTTONS", "buttons": buttons}),
    ]
}

/// Components as `POST /{waba-id}/message_templates` wants them, with example values.
fn template_components(c: &Components, format: ParameterFormat, names: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(header) = &c.header {
        let mut h = json!({"type": "HEADER", "format": header.format});
        if let Some(text) = &header.text {
            h["text"] = json!(text);
        }
        if let Some(example) = &header.example {
            h["example"] = match (header.format, format) {
                (HeaderFormat::Text, ParameterFormat::Positional) => {
                    json!({"header_text": [example]})
                }
                (HeaderFormat::Text, ParameterFormat::Named) => {
                    let name = header.text.as_deref().and_then(|t| {
                        crate::placeholders::Placeholders::parse(t)
                            .ok()
                            .and_then(|p| p.names.into_iter().next())
                    });
                    json!({"header_text_named_params": [{"param_name": name, "example": example}]})
                }
                _ => json!({"header_handle": [example]}),
            };
        }
        out.push(h);
    }
    let mut body = json!({"type": "BODY", "text": c.body});
    if !c.body_examples.is_empty() {
        body["example"] = match format {
            ParameterFormat::Positional => json!({"body_text": [c.body_examples]}),
            ParameterFormat::Named => {
                json!({"body_text_named_params": names.iter().zip(&c.body_examples)
                .map(|(n, e)| json!({"param_name": n, "example": e})).collect::<Vec<_>>()})
            }
        };
    }
    out.push(body);
    if let Some(footer) = &c.footer {
        out.push(json!({"type": "FOOTER", "text": footer}));
    }
    if !c.buttons.is_empty() {
        let buttons: Vec<Value> = c
            .buttons
            .iter()
            .map(|b| {
                let mut button = json!({"type": b.r#type, "text": b.text});
                if let Some(url) = &b.url {
                    button["url"] = json!(url);
                }
                if let Some(phone) = &b.phone_number {
                    button["phone_number"] = json!(phone);
                }
                match (b.r#type, &b.example) {
                    (ButtonType::CopyCode, Some(code)) => {
                        button = json!({"type": "COPY_CODE", "example": code});
                    }
                    (ButtonType::Url, Some(url)) => button["example"] = json!([url]),
                    (ButtonType::Otp, _) => button["otp_type"] = json!("COPY_CODE"),
                    _ => {}
                }
                button
            })
            .collect();
        out.push(json!({"type": "BUTTONS", "buttons": buttons}));
    }
    out
}
