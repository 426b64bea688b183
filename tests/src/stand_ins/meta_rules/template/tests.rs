//! Template sends checked against a catalog as Meta lists it: components, parameters, counts,
//! buttons, and the codes Meta answers each problem with.

use serde_json::{Value, json};

use super::super::{refusal, status};

/// rich_templates.rs's catalog, cloud_api.rs's and the campaigns' templates, as Meta lists them.
fn catalog() -> Vec<Value> {
    let t = |name: &str, components: Value| {
        json!({"name": name, "language": "en_US", "status": "APPROVED", "category": "UTILITY",
               "id": name, "components": components})
    };
    vec![
        t(
            "parcel",
            json!([
            {"type": "BODY", "text": "Hi {{1}}, your parcel is on its way.", "example": {"body_text": [["Ana"]]}},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track",
                "url": "https://shop.example.com/track/{{1}}", "example": ["https://shop.example.com/track/PX-1"]}]}]),
        ),
        t(
            "order_ready",
            json!([
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1h"]}},
            {"type": "BODY", "text": "Your order {{1}} is ready.", "example": {"body_text": [["A-1001"]]}}]),
        ),
        t(
            "store_visit",
            json!([
            {"type": "HEADER", "format": "LOCATION"},
            {"type": "BODY", "text": "See you at {{1}}."},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Stop promos"},
                {"type": "COPY_CODE", "example": "SAVE10"},
                {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+14155550100"},
                {"type": "URL", "text": "Menu", "url": "https://shop.example.com/menu"}]}]),
        ),
        t(
            "invoice",
            json!([{"type": "HEADER", "format": "DOCUMENT"},
            {"type": "BODY", "text": "Your invoice is attached."}]),
        ),
        t(
            "teaser",
            json!([{"type": "HEADER", "format": "VIDEO"},
            {"type": "BODY", "text": "New season. Reply STOP to opt out."}]),
        ),
        t(
            "sale",
            json!([{"type": "HEADER", "format": "TEXT", "text": "Sale starts {{sale_date}}"},
            {"type": "BODY", "text": "Hi {{first_name}}! Reply STOP to opt out."}]),
        ),
        t(
            "login_code",
            json!([{"type": "BODY", "text": "*{{1}}* is your verification code."},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]}]),
        ),
        t(
            "appointment",
            json!([{"type": "BODY", "text": "Hi {{1}}, see you at {{2}}."}]),
        ),
        t(
            "named_hello",
            json!([{"type": "BODY", "text": "Hi {{customer_name}}!"}]),
        ),
        t("receipt", json!([{"type": "BODY", "text": "Your receipt"}])),
        t(
            "coupon_drop",
            json!([{"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Hi {{1}}, here is your code. Reply STOP to opt out."},
            {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "SAVE10"}]}]),
        ),
        json!({"name": "paused_one", "language": "en_US", "status": "PAUSED", "components": []}),
        json!({"name": "disabled_one", "language": "en_US", "status": "DISABLED", "components": []}),
        json!({"name": "pending_one", "language": "en_US", "status": "PENDING", "components": []}),
    ]
}

/// A template send as Waflow builds it (`message_body`), with `components` unless null.
fn send(name: &str, components: Value) -> Value {
    let mut template = json!({"name": name, "language": {"code": "en_US"}});
    if !components.is_null() {
        template["components"] = components;
    }
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "14155550123",
           "type": "template", "template": template})
}

fn code(body: &Value) -> Option<i64> {
    refusal(body, &catalog()).map(|r| r["error"]["code"].as_i64().unwrap())
}

fn body(values: &[&str]) -> Value {
    let parameters: Vec<Value> = values
        .iter()
        .map(|v| json!({"type": "text", "text": v}))
        .collect();
    json!({"type": "body", "parameters": parameters})
}

fn button(sub_type: &str, index: &str, parameters: Value) -> Value {
    json!({"type": "button", "sub_type": sub_type, "index": index, "parameters": parameters})
}

fn image(link: &str) -> Value {
    json!({"type": "header", "parameters": [{"type": "image", "image": {"link": link}}]})
}

/// The exact sends rich_templates.rs, cloud_api.rs and campaigns/parameters.rs assert.
#[test]
fn waflow_s_template_sends_are_accepted() {
    let here = json!({"latitude": 19.4326, "longitude": -99.1332, "name": "Centro", "address": "Av. Juárez 1"});
    let sends = [
        send(
            "parcel",
            json!([
                body(&["Ana"]),
                button("url", "0", json!([{"type": "text", "text": "PX-1001"}]))
            ]),
        ),
        send(
            "order_ready",
            json!([
                image("https://cdn.example.com/a-1001.jpg"),
                body(&["A-1001"])
            ]),
        ),
        send(
            "store_visit",
            json!([
            {"type": "header", "parameters": [{"type": "location", "location": here}]},
            body(&["Main St"]),
            button("quick_reply", "0", json!([{"type": "payload", "payload": "stop-promos"}])),
            button("copy_code", "1", json!([{"type": "coupon_code", "coupon_code": "SAVE10"}]))]),
        ),
        send(
            "invoice",
            json!([{"type": "header", "parameters": [{"type": "document", "document":
            {"id": "1037543291543636", "filename": "invoice-7.pdf"}}]}]),
        ),
        send(
            "teaser",
            json!([{"type": "header", "parameters": [{"type": "video", "video":
            {"link": "https://cdn.example.com/teaser.mp4"}}]}]),
        ),
        send(
            "sale",
            json!([
            {"type": "header", "parameters": [{"type": "text", "parameter_name": "sale_date", "text": "Friday"}]},
            {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]}]),
        ),
        send(
            "login_code",
            json!([
                body(&["482913"]),
                button("url", "0", json!([{"type": "text", "text": "482913"}]))
            ]),
        ),
        send("appointment", json!([body(&["Ana", "10:30"])])),
        send(
            "named_hello",
            json!([{"type": "body", "parameters":
            [{"type": "text", "parameter_name": "customer_name", "text": "Ana"}]}]),
        ),
        send("receipt", Value::Null),
        send(
            "coupon_drop",
            json!([
                image("https://cdn.example.com/ana.jpg"),
                body(&["Ana"]),
                button(
                    "copy_code",
                    "0",
                    json!([{"type": "coupon_code", "coupon_code": "ANA10"}])
                )
            ]),
        ),
    ];
    for body in sends {
        assert_eq!(refusal(&body, &catalog()), None, "{body}");
    }
}

#[test]
fn the_template_object_s_shape() {
    let shape = |template: Value| {
        let body = json!({"messaging_product": "whatsapp", "to": "1", "type": "template", "template": template});
        refusal(&body, &[]).map(|r| r["error"]["code"].as_i64().unwrap())
    };
    let with = |components: Value| {
        shape(json!({"name": "t", "language": {"code": "en"}, "components": components}))
    };
    assert_eq!(
        shape(json!({"name": "t", "language": {"code": "en", "policy": "deterministic"}})),
        None
    );
    assert_eq!(
        with(json!([button(
            "flow",
            "0",
            json!([{"type": "action", "action": {"flow_token": "x"}}])
        )])),
        None
    );
    assert_eq!(
        with(
            json!([{"type": "body", "parameters": [{"type": "currency", "currency":
        {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}}, {"type": "date_time",
        "date_time": {"fallback_value": "May 1"}}]}])
        ),
        None
    );
    assert_eq!(with(json!([body(&[&"x".repeat(32768)])])), None);
    for (components, expected) in [
        (json!([{"type": "footer"}]), 100),
        (json!([{"type": "BODY", "parameters": []}]), 100),
        (json!([body(&["a"]), body(&["b"])]), 100),
        (json!([{"type": "body"}]), 131008),
        (json!([body(&[""])]), 131009),
        (json!([body(&[&"x".repeat(32769)])]), 131009),
        (
            json!([image("https://a.example/x.jpg"), body(&[&"x".repeat(1025)])]),
            131009,
        ),
        (
            json!([{"type": "header", "parameters": [{"type": "text", "text": "x".repeat(61)}]}]),
            131009,
        ),
        (
            json!([{"type": "body", "parameters": [{"type": "image", "image": {"id": "1"}}]}]),
            100,
        ),
        (
            json!([{"type": "body", "parameters": [{"type": "text"}]}]),
            131008,
        ),
        (
            json!([{"type": "body", "parameters": [{"type": "text", "text": "a", "parameter_name": "First"}]}]),
            131009,
        ),
        (
            json!([{"type": "body", "parameters": [{"type": "txt", "text": "a"}]}]),
            100,
        ),
        (
            json!([{"type": "body", "parameters": [{"type": "currency", "currency": {"code": "USD", "amount_1000": 1}}]}]),
            131008,
        ),
        (
            json!([{"type": "header", "parameters": [{"type": "image", "image": {"link": "https://a.example/x.jpg", "id": "1"}}]}]),
            100,
        ),
        (
            json!([{"type": "header", "parameters": [{"type": "location", "location": {"latitude": 91, "longitude": 0}}]}]),
            131009,
        ),
        (
            json!([{"type": "button", "index": "0", "parameters": []}]),
            131008,
        ),
        (json!([button("link", "0", json!([]))]), 100),
        (json!([button("url", "10", json!([]))]), 131009),
        (
            json!([{"type": "button", "sub_type": "url", "parameters": []}]),
            131008,
        ),
        (
            json!([
                button("url", "0", json!([])),
                button("quick_reply", "0", json!([]))
            ]),
            100,
        ),
        (
            json!([button(
                "copy_code",
                "0",
                json!([{"type": "coupon_code", "coupon_code": "C".repeat(21)}])
            )]),
            131009,
        ),
        (
            json!([button("quick_reply", "0", json!([{"type": "payload"}]))]),
            131008,
        ),
    ] {
        assert_eq!(with(components.clone()), Some(expected), "{components}");
    }
    assert_eq!(shape(json!({"name": "t"})), Some(131008));
    assert_eq!(shape(json!({"name": "t", "language": {}})), Some(131008));
    assert_eq!(shape(json!({"name": "t", "language": "en_US"})), Some(100));
    assert_eq!(shape(json!({"language": {"code": "en"}})), Some(131008));
    assert_eq!(
        shape(json!({"name": "t", "language": {"code": "en"}, "components": {}})),
        Some(100)
    );
}

#[test]
fn the_template_must_exist_approved() {
    let unknown = refusal(&send("nope", Value::Null), &catalog()).unwrap();
    assert_eq!(unknown["error"]["code"], 132001);
    assert_eq!(status(&unknown), 404);
    let mut spanish = send("receipt", Value::Null);
    spanish["template"]["language"]["code"] = json!("es");
    assert_eq!(code(&spanish), Some(132001));
    assert_eq!(code(&send("pending_one", Value::Null)), Some(132001));
    assert_eq!(code(&send("paused_one", Value::Null)), Some(132015));
    assert_eq!(code(&send("disabled_one", Value::Null)), Some(132016));
}

#[test]
fn body_and_header_parameters_match_the_template() {
    let sale_header = |parameter: Value| json!({"type": "header", "parameters": [parameter]});
    let first_name = json!({"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]});
    for (body, expected) in [
        // The body's count.
        (send("appointment", json!([body(&["Ana"])])), 132000),
        (
            send("appointment", json!([body(&["Ana", "10:30", "x"])])),
            132000,
        ),
        (send("appointment", Value::Null), 132000),
        (send("receipt", json!([body(&["x"])])), 132000),
        (
            send(
                "parcel",
                json!([
                    body(&["Ana", "PX-1001"]),
                    button("url", "0", json!([{"type": "text", "text": "PX"}]))
                ]),
            ),
            132000,
        ),
        // Named placeholders need their names.
        (send("named_hello", json!([body(&["Ana"])])), 131008),
        (
            send(
                "named_hello",
                json!([{"type": "body", "parameters":
            [{"type": "text", "parameter_name": "name", "text": "Ana"}]}]),
            ),
            132000,
        ),
        // A TEXT header with a placeholder takes one text; without, none; no header, none.
        (send("sale", json!([first_name.clone()])), 132000),
        (
            send(
                "sale",
                json!([
                    sale_header(
                        json!({"type": "text", "parameter_name": "sale_date", "text": "Fri"})
                    ),
                    sale_header(json!({"type": "text", "text": "x"})),
                    first_name.clone()
                ]),
            ),
            100,
        ),
        (
            send(
                "sale",
                json!([
                    sale_header(json!({"type": "image", "image": {"id": "1"}})),
                    first_name.clone()
                ]),
            ),
            132012,
        ),
        (
            send(
                "receipt",
                json!([{"type": "header", "parameters": [{"type": "text", "text": "Hi"}]}]),
            ),
            132000,
        ),
        // A media or location header needs its own kind, exactly once.
        (send("order_ready", json!([body(&["A-1001"])])), 132012),
        (
            send(
                "order_ready",
                json!([{"type": "header", "parameters": [{"type": "video", "video": {"id": "1"}}]},
            body(&["A-1001"])]),
            ),
            132012,
        ),
        (
            send(
                "order_ready",
                json!([{"type": "header", "parameters": [{"type": "image", "image": {"id": "1"}},
            {"type": "image", "image": {"id": "2"}}]}, body(&["A-1001"])]),
            ),
            132000,
        ),
        (send("invoice", Value::Null), 132012),
        (
            send(
                "store_visit",
                json!([
                    body(&["Main St"]),
                    button(
                        "copy_code",
                        "1",
                        json!([{"type": "coupon_code", "coupon_code": "SAVE10"}])
                    )
                ]),
            ),
            132012,
        ),
    ] {
        assert_eq!(code(&body), Some(expected), "{body}");
    }
}

#[test]
fn buttons_match_the_template() {
    let visit = |buttons: Value| {
        let here = json!({"type": "header", "parameters": [{"type": "location", "location": {"latitude": 1, "longitude": 2}}]});
        let mut components = vec![here, body(&["Main St"])];
        components.extend(buttons.as_array().unwrap().iter().cloned());
        send("store_visit", Value::Array(components))
    };
    let coupon = button(
        "copy_code",
        "1",
        json!([{"type": "coupon_code", "coupon_code": "SAVE10"}]),
    );
    assert_eq!(
        code(&visit(json!([coupon.clone()]))),
        None,
        "the quick reply's payload is optional"
    );
    let no_payload = button("quick_reply", "0", json!([]));
    assert_eq!(code(&visit(json!([coupon.clone(), no_payload]))), None);
    let parcel = |buttons: Value| {
        let mut components = vec![body(&["Ana"])];
        components.extend(buttons.as_array().unwrap().iter().cloned());
        send("parcel", Value::Array(components))
    };
    for (body, expected) in [
        // Required parameters: a URL's suffix, a coupon code, a one-time password.
        (parcel(json!([])), 131008),
        (parcel(json!([button("url", "0", json!([]))])), 131008),
        (visit(json!([])), 131008),
        (send("login_code", json!([body(&["482913"])])), 131008),
        // A parameter of the wrong kind, or too many.
        (
            parcel(json!([button(
                "url",
                "0",
                json!([{"type": "payload", "payload": "x"}])
            )])),
            132012,
        ),
        (
            parcel(json!([button(
                "url",
                "0",
                json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
            )])),
            132000,
        ),
        (
            visit(json!([
                coupon.clone(),
                button("quick_reply", "0", json!([{"type": "text", "text": "x"}]))
            ])),
            132012,
        ),
        // A button component naming no button of its sub_type.
        (
            parcel(json!([
                button("url", "0", json!([{"type": "text", "text": "PX"}])),
                button("url", "3", json!([{"type": "text", "text": "PX"}]))
            ])),
            131009,
        ),
        (
            visit(json!([button(
                "url",
                "1",
                json!([{"type": "text", "text": "x"}])
            )])),
            131009,
        ),
        (
            visit(json!([
                coupon.clone(),
                button("url", "2", json!([{"type": "text", "text": "x"}]))
            ])),
            131009,
        ),
        (
            visit(json!([
                coupon.clone(),
                button("quick_reply", "1", json!([]))
            ])),
            100,
        ),
        // A static URL takes no suffix.
        (
            visit(json!([
                coupon.clone(),
                button("url", "3", json!([{"type": "text", "text": "x"}]))
            ])),
            132000,
        ),
    ] {
        assert_eq!(code(&body), Some(expected), "{body}");
    }
}

/// Indexes count every button Meta lists, those of kinds that take nothing included.
#[test]
fn a_button_index_counts_every_listed_button() {
    let listed = [
        json!({"name": "signup", "language": "en_US", "status": "APPROVED", "components": [
        {"type": "BODY", "text": "Welcome"},
        {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Sign up", "flow_id": "1"},
            {"type": "URL", "text": "Track", "url": "https://a.example/{{1}}"}]}]}),
    ];
    let at = |index: &str| {
        let suffix = button("url", index, json!([{"type": "text", "text": "PX"}]));
        let body = send("signup", json!([suffix]));
        refusal(&body, &listed).map(|r| r["error"]["code"].as_i64().unwrap())
    };
    assert_eq!(at("1"), None);
    assert_eq!(at("0"), Some(131009));
}

#[test]
fn placeholders_are_distinct_names() {
    assert_eq!(super::placeholders("Hi {{1}}, {{2}} and {{1}}"), ["1", "2"]);
    assert_eq!(
        super::placeholders("Hi {{ first_name }} {{}} {{a b}}"),
        ["first_name"]
    );
    assert!(super::placeholders("Your receipt").is_empty());
}
