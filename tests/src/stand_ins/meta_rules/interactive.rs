//! `type: "interactive"`: reply buttons ("Interactive reply buttons messages") and lists
//! ("Interactive list messages") with every limit those pages give; the other interactive kinds
//! (CTA URL, Flows, products, location requests…) are taken on their `action` alone.

use serde_json::Value;

use super::{Checked, array, media, object, only, optional_text, refuse, string, text};

/// Interactive kinds Meta documents besides `button` and `list`.
const OTHER_KINDS: [&str; 9] = [
    "cta_url",
    "flow",
    "product",
    "product_list",
    "catalog_message",
    "location_request_message",
    "address_message",
    "call_permission_request",
    "carousel",
];

pub(super) fn check(i: &Value) -> Checked {
    let keys = ["type", "header", "body", "footer", "action"];
    match string(i, "type", "interactive")? {
        "button" => {
            only(i, &keys, "interactive")?;
            header(i, &["text", "image", "video", "document"])?;
            body_and_footer(i, 1024)?;
            reply_buttons(object(i, "action", "interactive")?)
        }
        "list" => {
            only(i, &keys, "interactive")?;
            header(i, &["text"])?;
            body_and_footer(i, 4096)?;
            list(object(i, "action", "interactive")?)
        }
        kind if OTHER_KINDS.contains(&kind) => object(i, "action", "interactive").map(|_| ()),
        kind => refuse(100, format!("interactive.type {kind:?} is not supported")),
    }
}

/// The optional header: text (≤ 60 characters) or, where `kinds` allows, media without caption.
fn header(i: &Value, kinds: &[&str]) -> Checked {
    let Some(h) = i.get("header") else {
        return Ok(());
    };
    let at = "interactive.header";
    let kind = string(h, "type", at)?;
    if !kinds.contains(&kind) {
        return refuse(
            131009,
            format!("{at}.type must be one of {kinds:?}, not {kind:?}"),
        );
    }
    if kind == "text" {
        only(h, &["type", "text"], at)?;
        return text(h, "text", at, 60).map(|_| ());
    }
    only(h, &["type", kind], at)?;
    let extra: &[&str] = if kind == "document" {
        &["filename"]
    } else {
        &[]
    };
    media(object(h, kind, at)?, &format!("{at}.{kind}"), extra)
}

/// The body (required, ≤ `body_max` characters) and the optional footer (≤ 60).
fn body_and_footer(i: &Value, body_max: usize) -> Checked {
    let body = object(i, "body", "interactive")?;
    only(body, &["text"], "interactive.body")?;
    text(body, "text", "interactive.body", body_max)?;
    if let Some(footer) = i.get("footer") {
        only(footer, &["text"], "interactive.footer")?;
        text(footer, "text", "interactive.footer", 60)?;
    }
    Ok(())
}

/// One to three `reply` buttons; ids ≤ 256 and titles ≤ 20 characters, each unique.
fn reply_buttons(action: &Value) -> Checked {
    let at = "interactive.action";
    only(action, &["buttons"], at)?;
    let buttons = array(action, "buttons", at)?;
    if !(1..=3).contains(&buttons.len()) {
        return refuse(
            131009,
            format!("{at}.buttons: 1 to 3 buttons, not {}", buttons.len()),
        );
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (n, button) in buttons.iter().enumerate() {
        let at = format!("{at}.buttons[{n}]");
        only(button, &["type", "reply"], &at)?;
        if string(button, "type", &at)? != "reply" {
            return refuse(131009, format!("{at}.type must be \"reply\""));
        }
        let reply = object(button, "reply", &at)?;
        let at = format!("{at}.reply");
        only(reply, &["id", "title"], &at)?;
        let id = text(reply, "id", &at, 256)?;
        let title = text(reply, "title", &at, 20)?;
        if seen.iter().any(|(i, t)| *i == id || *t == title) {
            return refuse(
                131009,
                format!("{at}: button ids and titles must be unique"),
            );
        }
        seen.push((id, title));
    }
    Ok(())
}

/// A button label (≤ 20), 1 to 10 sections holding 1 to 10 rows in all; a section title (≤ 24)
/// when there are several sections; row ids ≤ 200 and unique, titles ≤ 24, descriptions ≤ 72.
fn list(action: &Value) -> Checked {
    let at = "interactive.action";
    only(action, &["button", "sections"], at)?;
    text(action, "button", at, 20)?;
    let sections = array(action, "sections", at)?;
    if !(1..=10).contains(&sections.len()) {
        return refuse(
            131009,
            format!("{at}.sections: 1 to 10 sections, not {}", sections.len()),
        );
    }
    let mut ids = Vec::new();
    for (s, section) in sections.iter().enumerate() {
        let at = format!("{at}.sections[{s}]");
        only(section, &["title", "rows"], &at)?;
        if optional_text(section, "title", &at, 24)?.is_none() && sections.len() > 1 {
            return refuse(
                131008,
                format!("{at}.title is required when there are several sections"),
            );
        }
        let rows = array(section, "rows", &at)?;
        if rows.is_empty() {
            return refuse(
                131009,
                format!("{at}.rows: a section needs at least one row"),
            );
        }
        for (r, row) in rows.iter().enumerate() {
            let at = format!("{at}.rows[{r}]");
            only(row, &["id", "title", "description"], &at)?;
            let id = text(row, "id", &at, 200)?;
            text(row, "title", &at, 24)?;
            optional_text(row, "description", &at, 72)?;
            if ids.contains(&id) {
                return refuse(131009, format!("{at}.id: row ids must be unique"));
            }
            ids.push(id);
        }
    }
    if ids.len() > 10 {
        return refuse(
            131009,
            format!("{at}.sections: at most 10 rows in all, not {}", ids.len()),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{accepted, code, message};

    fn buttons(extra: Value) -> Value {
        let mut i = json!({"type": "button", "body": {"text": "Pick"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]}});
        for (key, value) in extra.as_object().unwrap() {
            i[key] = value.clone();
        }
        message("interactive", i)
    }

    fn reply(id: &str, title: &str) -> Value {
        json!({"type": "reply", "reply": {"id": id, "title": title}})
    }

    fn list(sections: Value) -> Value {
        message(
            "interactive",
            json!({"type": "list", "body": {"text": "Menu"},
            "action": {"button": "Open", "sections": sections}}),
        )
    }

    /// `n` rows, their ids `r{from}`, `r{from + 1}`…
    fn rows(from: usize, n: usize) -> Vec<Value> {
        (from..from + n)
            .map(|i| json!({"id": format!("r{i}"), "title": "Row"}))
            .collect()
    }

    #[test]
    fn waflow_s_interactive_messages_are_accepted() {
        // every_kind_reaches_meta_in_its_shape and a_flow_step_sends_buttons_in_reply
        // (rich_messages.rs).
        accepted(message(
            "interactive",
            json!({"type": "button",
            "header": {"type": "image", "image": {"link": "https://cdn.example.com/blue.jpg"}},
            "body": {"text": "Shall we reserve one?"}, "footer": {"text": "Acme"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                                   {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}),
        ));
        accepted(message(
            "interactive",
            json!({"type": "list", "header": {"type": "text", "text": "Sizes"},
            "body": {"text": "Pick your size"}, "action": {"button": "Sizes", "sections": [
                {"title": "Men", "rows": [{"id": "m-m", "title": "M", "description": "Chest 96-101 cm"}]},
                {"title": "Women", "rows": [{"id": "w-s", "title": "S"}]}]}}),
        ));
        let mut quoted = message(
            "interactive",
            json!({"type": "button",
            "body": {"text": "Hi Ana, track or talk?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "track", "title": "Track"}},
                                   {"type": "reply", "reply": {"id": "agent", "title": "Agent"}}]}}),
        );
        quoted["context"] = json!({"message_id": "wamid.IN-3"});
        accepted(quoted);
        accepted(message(
            "interactive",
            json!({"type": "cta_url", "body": {"text": "Open"},
            "action": {"name": "cta_url", "parameters": {"display_text": "Go", "url": "https://a.example"}}}),
        ));
    }

    #[test]
    fn reply_buttons_follow_meta_s_limits() {
        let document = json!({"type": "document", "document": {"id": "1", "filename": "a.pdf"}});
        accepted(buttons(json!({"header": document})));
        accepted(buttons(
            json!({"header": {"type": "text", "text": "x".repeat(60)}}),
        ));
        accepted(buttons(
            json!({"action": {"buttons": [reply("a", "A"), reply("b", "B"), reply("c", "C")]}}),
        ));
        for (extra, expected) in [
            (
                json!({"action": {"buttons": [reply("a", "A"), reply("b", "B"), reply("c", "C"), reply("d", "D")]}}),
                131009,
            ),
            (json!({"action": {"buttons": []}}), 131009),
            (
                json!({"action": {"buttons": [reply("a", "A title of twenty-one")]}}),
                131009,
            ),
            (
                json!({"action": {"buttons": [reply(&"i".repeat(257), "A")]}}),
                131009,
            ),
            (
                json!({"action": {"buttons": [reply("a", "A"), reply("a", "B")]}}),
                131009,
            ),
            (
                json!({"action": {"buttons": [reply("a", "A"), reply("b", "A")]}}),
                131009,
            ),
            (
                json!({"action": {"buttons": [{"type": "url", "reply": {"id": "a", "title": "A"}}]}}),
                131009,
            ),
            (
                json!({"action": {"buttons": [{"type": "reply", "reply": {"id": "a"}}]}}),
                131008,
            ),
            (json!({"body": {"text": "x".repeat(1025)}}), 131009),
            (json!({"body": {}}), 131008),
            (json!({"footer": {"text": "x".repeat(61)}}), 131009),
            (
                json!({"header": {"type": "text", "text": "x".repeat(61)}}),
                131009,
            ),
            (json!({"header": {"type": "location"}}), 131009),
            (
                json!({"header": {"type": "image", "image": {"id": "1", "caption": "x"}}}),
                100,
            ),
            (json!({"header": {"type": "video", "video": {}}}), 131008),
        ] {
            assert_eq!(code(&buttons(extra.clone())), Some(expected), "{extra}");
        }
        let mut no_body = buttons(json!({}));
        no_body["interactive"]
            .as_object_mut()
            .unwrap()
            .remove("body");
        assert_eq!(code(&no_body), Some(131008));
        let mut other = buttons(json!({}));
        other["interactive"]["type"] = json!("poll");
        assert_eq!(code(&other), Some(100));
    }

    #[test]
    fn lists_follow_meta_s_limits() {
        accepted(list(json!([{"rows": rows(0, 10)}])));
        let long_body = json!({"type": "list", "body": {"text": "x".repeat(4096)},
            "action": {"button": "Open", "sections": [{"rows": rows(0, 1)}]}});
        accepted(message("interactive", long_body));
        for (sections, expected) in [
            (json!([{"rows": rows(0, 11)}]), 131009),
            (json!([]), 131009),
            (json!([{"rows": []}]), 131009),
            (
                json!([{"title": "A", "rows": rows(0, 6)}, {"title": "B", "rows": rows(6, 5)}]),
                131009,
            ),
            (
                json!([{"rows": rows(0, 1)}, {"title": "B", "rows": [{"id": "x", "title": "X"}]}]),
                131008,
            ),
            (
                json!([{"title": "T".repeat(25), "rows": rows(0, 1)}]),
                131009,
            ),
            (
                json!([{"rows": [{"id": "x".repeat(201), "title": "X"}]}]),
                131009,
            ),
            (
                json!([{"rows": [{"id": "x", "title": "X".repeat(25)}]}]),
                131009,
            ),
            (
                json!([{"rows": [{"id": "x", "title": "X", "description": "d".repeat(73)}]}]),
                131009,
            ),
            (
                json!([{"title": "A", "rows": rows(0, 1)}, {"title": "B", "rows": rows(0, 1)}]),
                131009,
            ),
        ] {
            assert_eq!(code(&list(sections.clone())), Some(expected), "{sections}");
        }
        let image = json!({"type": "list", "header": {"type": "image", "image": {"id": "1"}},
            "body": {"text": "Menu"}, "action": {"button": "Open", "sections": [{"rows": rows(0, 1)}]}});
        assert_eq!(code(&message("interactive", image)), Some(131009));
        let long_button = json!({"type": "list", "body": {"text": "Menu"},
            "action": {"button": "B".repeat(21), "sections": [{"rows": rows(0, 1)}]}});
        assert_eq!(code(&message("interactive", long_button)), Some(131009));
    }
}
