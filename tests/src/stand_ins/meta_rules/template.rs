//! `type: "template"`: the template object's shape ("Messages API": template, component and
//! parameter objects; "Template components"), then, when the account's templates are known,
//! the send against the template as `GET /{waba-id}/message_templates` lists it. The codes are
//! "WhatsApp error codes": 132001 (no such template in that language, or not approved), 132015
//! (paused), 132016 (disabled), 132000 (parameter count), 132012 (parameter format), 131008 (a
//! button's required parameter missing), 131009 (a button component naming no such button).

use serde_json::Value;

use super::{Checked, array, field, location, media, object, only, refuse, string, text};

/// A button component's `sub_type`s ("Messages API": components object).
const SUB_TYPES: [&str; 7] = [
    "url",
    "quick_reply",
    "copy_code",
    "catalog",
    "flow",
    "mpm",
    "voice_call",
];

/// The parameter kinds each component takes ("Messages API": parameters object).
fn kinds(component: &str) -> &'static [&'static str] {
    match component {
        "header" => &[
            "text",
            "currency",
            "date_time",
            "image",
            "video",
            "document",
            "location",
        ],
        "body" => &["text", "currency", "date_time"],
        _ => &["text", "payload", "coupon_code", "action"],
    }
}

/// The components of a send: header and body parameters, and the button components.
#[derive(Default)]
struct Sent<'a> {
    header: Option<&'a [Value]>,
    body: Option<&'a [Value]>,
    buttons: Vec<SentButton<'a>>,
}

struct SentButton<'a> {
    index: usize,
    sub_type: &'a str,
    parameters: &'a [Value],
}

pub(super) fn check(t: &Value, templates: &[Value]) -> Checked {
    only(t, &["name", "language", "components"], "template")?;
    let name = text(t, "name", "template", 512)?;
    let language = object(t, "language", "template")?;
    only(language, &["code", "policy"], "template.language")?;
    let code = text(language, "code", "template.language", usize::MAX)?;
    if language.get("policy").is_some_and(|p| p != "deterministic") {
        return refuse(131009, "template.language.policy must be \"deterministic\"");
    }
    let sent = components(t)?;
    if templates.is_empty() {
        return Ok(());
    }
    let Some(listed) = templates
        .iter()
        .find(|l| l["name"] == name && l["language"] == code)
    else {
        return refuse(
            132001,
            format!("template name ({name}) does not exist in {code}"),
        );
    };
    match listed["status"].as_str().unwrap_or_default() {
        "APPROVED" => {}
        "PAUSED" => return refuse(132015, format!("template {name} is paused for low quality")),
        "DISABLED" => return refuse(132016, format!("template {name} is disabled")),
        other => {
            return refuse(
                132001,
                format!("template {name} ({code}) is {other}, not approved"),
            );
        }
    }
    against(listed, &sent)
}

/// `components`: header and body at most once each, buttons at most once per index, and every
/// parameter of a kind its component takes, with the field that kind names.
fn components(t: &Value) -> Checked<Sent<'_>> {
    let mut sent = Sent::default();
    let Some(list) = t.get("components") else {
        return Ok(sent);
    };
    let Some(list) = list.as_array() else {
        return refuse(100, "template.components must be an array");
    };
    // The body's text parameters may be longer when it is the only component.
    let body_only = list.iter().all(|c| c["type"] == "body");
    for (n, c) in list.iter().enumerate() {
        let at = format!("template.components[{n}]");
        let kind = string(c, "type", &at)?;
        if !["header", "body", "button"].contains(&kind) {
            return refuse(
                100,
                format!("{at}.type must be header, body or button, not {kind:?}"),
            );
        }
        let parameters = array(c, "parameters", &at)?;
        match kind {
            "header" | "body" => {
                only(c, &["type", "parameters"], &at)?;
                let slot = if kind == "header" {
                    &mut sent.header
                } else {
                    &mut sent.body
                };
                if slot.replace(parameters).is_some() {
                    return refuse(100, format!("{at}: a second {kind} component"));
                }
            }
            _ => {
                only(c, &["type", "sub_type", "index", "parameters"], &at)?;
                let sub_type = string(c, "sub_type", &at)?;
                if !SUB_TYPES.contains(&sub_type) {
                    return refuse(
                        100,
                        format!("{at}.sub_type {sub_type:?} is not one of {SUB_TYPES:?}"),
                    );
                }
                let index = index(c, &at)?;
                if sent.buttons.iter().any(|b| b.index == index) {
                    return refuse(100, format!("{at}: a second component for button {index}"));
                }
                sent.buttons.push(SentButton {
                    index,
                    sub_type,
                    parameters,
                });
            }
        }
        for (p, parameter) in parameters.iter().enumerate() {
            self::parameter(parameter, kind, &format!("{at}.parameters[{p}]"), body_only)?;
        }
    }
    Ok(sent)
}

/// A button's position: 0 to 9, a string or a number.
fn index(c: &Value, at: &str) -> Checked<usize> {
    let index = match field(c, "index", at)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        _ => return refuse(100, format!("{at}.index must be a string or a number")),
    };
    match index {
        Some(i) if i <= 9 => Ok(i),
        _ => refuse(131009, format!("{at}.index must be 0 to 9")),
    }
}

/// One parameter: its `type`, and the object or field that type names. Text is ≤ 60 characters
/// in a header, ≤ 1024 in a body (≤ 32768 when the body is the only component).
fn parameter(p: &Value, component: &str, at: &str, body_only: bool) -> Checked {
    let kind = string(p, "type", at)?;
    if !kinds(component).contains(&kind) {
        return refuse(
            100,
            format!("{at}: a {component} component takes no {kind:?} parameter"),
        );
    }
    only(p, &["type", "parameter_name", kind], at)?;
    match kind {
        "text" => {
            let max = match component {
                "header" => 60,
                "body" if body_only => 32768,
                "body" => 1024,
                _ => 2000,
            };
            text(p, "text", at, max)?;
        }
        "currency" => {
            let c = object(p, "currency", at)?;
            let at = format!("{at}.currency");
            text(c, "fallback_value", &at, usize::MAX)?;
            text(c, "code", &at, 3)?;
            if !field(c, "amount_1000", &at)?.is_i64() {
                return refuse(100, format!("{at}.amount_1000 must be an integer"));
            }
        }
        "date_time" => {
            text(
                object(p, "date_time", at)?,
                "fallback_value",
                at,
                usize::MAX,
            )?;
        }
        "image" | "video" | "document" => {
            let extra: &[&str] = if kind == "document" {
                &["filename"]
            } else {
                &[]
            };
            media(object(p, kind, at)?, &format!("{at}.{kind}"), extra)?;
        }
        "location" => location(object(p, "location", at)?, &format!("{at}.location"))?,
        // "Coupon code templates": the code is at most 20 characters.
        "coupon_code" => {
            text(p, "coupon_code", at, 20)?;
        }
        "payload" => {
            text(p, "payload", at, usize::MAX)?;
        }
        _ => {
            object(p, "action", at)?;
        }
    }
    match p.get("parameter_name").map(Value::as_str) {
        None => Ok(()),
        Some(None) => refuse(100, format!("{at}.parameter_name must be a string")),
        Some(Some(name)) => {
            let fine = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if fine {
                Ok(())
            } else {
                refuse(
                    131009,
                    format!("{at}.parameter_name {name:?}: lowercase letters, digits, _"),
                )
            }
        }
    }
}

/// The distinct `{{1}}` or `{{name}}` placeholders of a template text, in order.
fn placeholders(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        let name = after[..end].trim();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid && !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end + 2..];
    }
    names
}

/// The send against the listed template's HEADER, BODY and BUTTONS.
fn against(listed: &Value, sent: &Sent) -> Checked {
    let components = listed["components"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let find = |kind: &str| {
        components.iter().find(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        })
    };
    header(find("HEADER"), sent.header.unwrap_or_default())?;
    let body = find("BODY")
        .and_then(|b| b["text"].as_str())
        .unwrap_or_default();
    variables("body", &placeholders(body), sent.body.unwrap_or_default())?;
    let buttons = find("BUTTONS")
        .and_then(|b| b["buttons"].as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    self::buttons(buttons, &sent.buttons)
}

/// A TEXT header takes one text parameter per placeholder (none without); a media or LOCATION
/// header takes exactly one parameter of its kind, without which Meta answers 132012.
fn header(listed: Option<&Value>, sent: &[Value]) -> Checked {
    let Some(listed) = listed else {
        return variables("header", &[], sent);
    };
    let format = listed["format"]
        .as_str()
        .unwrap_or("TEXT")
        .to_ascii_uppercase();
    if format == "TEXT" {
        let names = placeholders(listed["text"].as_str().unwrap_or_default());
        return variables("header", &names, sent);
    }
    let received = sent
        .first()
        .and_then(|p| p["type"].as_str())
        .unwrap_or("UNKNOWN");
    if !received.eq_ignore_ascii_case(&format) {
        let received = received.to_ascii_uppercase();
        return refuse(
            132012,
            format!("header: Format mismatch, expected {format}, received {received}"),
        );
    }
    count("header", 1, sent.len())
}

fn count(component: &str, expected: usize, given: usize) -> Checked {
    if given == expected {
        return Ok(());
    }
    refuse(
        132000,
        format!(
            "{component}: number of localizable_params ({given}) does not match the expected number of params ({expected})"
        ),
    )
}

/// Text placeholders: one text-like parameter each; named placeholders are answered by
/// `parameter_name`, each once.
fn variables(component: &str, names: &[&str], sent: &[Value]) -> Checked {
    count(component, names.len(), sent.len())?;
    for p in sent {
        let kind = p["type"].as_str().unwrap_or_default();
        if !matches!(kind, "text" | "currency" | "date_time") {
            let kind = kind.to_ascii_uppercase();
            return refuse(
                132012,
                format!("{component}: Format mismatch, expected TEXT, received {kind}"),
            );
        }
    }
    if names.iter().all(|n| n.chars().all(|c| c.is_ascii_digit())) {
        return Ok(());
    }
    for p in sent {
        if p.get("parameter_name").is_none() {
            return refuse(
                131008,
                format!("{component}: a named parameter needs parameter_name"),
            );
        }
    }
    match names
        .iter()
        .find(|n| !sent.iter().any(|p| p["parameter_name"] == **n))
    {
        Some(missing) => refuse(
            132000,
            format!("{component}: no value for parameter {missing}"),
        ),
        None => Ok(()),
    }
}

/// What a listed button takes: the parameter kind, and whether it is required. A URL whose
/// address ends in a placeholder takes its suffix; an authentication template's OTP button
/// takes the code as a URL button's text ("Authentication templates"); a copy-code button takes
/// its coupon code ("Coupon code templates"); a quick reply may take a payload.
fn takes(button: &Value) -> Option<(&'static str, bool)> {
    let dynamic = button["url"].as_str().is_some_and(|u| u.contains("{{"));
    match kind_of(button).as_str() {
        "URL" if dynamic => Some(("text", true)),
        "OTP" => Some(("text", true)),
        "COPY_CODE" => Some(("coupon_code", true)),
        "QUICK_REPLY" => Some(("payload", false)),
        "FLOW" | "CATALOG" | "MPM" => Some(("action", false)),
        _ => None,
    }
}

fn kind_of(button: &Value) -> String {
    button["type"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// Each button component names a button of its `sub_type` and gives what that button takes;
/// every button with a required parameter gets one.
fn buttons(listed: &[Value], sent: &[SentButton]) -> Checked {
    for b in sent {
        let Some(button) = listed.get(b.index) else {
            let n = listed.len();
            return refuse(
                131009,
                format!(
                    "buttons: no button at index {}; the template has {n}",
                    b.index
                ),
            );
        };
        let kind = kind_of(button);
        let sub_type = match kind.as_str() {
            "URL" | "OTP" => "url".to_owned(),
            other => other.to_ascii_lowercase(),
        };
        if b.sub_type != sub_type {
            let (i, s) = (b.index, b.sub_type);
            return refuse(
                131009,
                format!("buttons: button at index {i} is {kind}, not {s}"),
            );
        }
        let at = format!("button at index {}", b.index);
        match takes(button) {
            None => count(&at, 0, b.parameters.len())?,
            Some((_, true)) if b.parameters.is_empty() => {
                return refuse(
                    131008,
                    format!(
                        "buttons: Button at index {} of type {kind} requires a parameter",
                        b.index
                    ),
                );
            }
            Some((expected, _)) => {
                count(&at, b.parameters.len().min(1), b.parameters.len())?;
                let received = b.parameters.first().and_then(|p| p["type"].as_str());
                if received.is_some_and(|r| r != expected) {
                    let received = received.unwrap_or_default();
                    return refuse(
                        132012,
                        format!("{at}: Format mismatch, expected {expected}, received {received}"),
                    );
                }
            }
        }
    }
    for (i, button) in listed.iter().enumerate() {
        let required = takes(button).is_some_and(|(_, required)| required);
        if required && !sent.iter().any(|b| b.index == i) {
            let kind = kind_of(button);
            return refuse(
                131008,
                format!("buttons: Button at index {i} of type {kind} requires a parameter"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
