//! A campaign of a template with an image header and a coupon button: each recipient's header
//! and button values rendered from their contact, checked for their shape at creation and for
//! Meta's limits per recipient (issue 17).

use super::*;

fn coupon_template() -> Value {
    json!({"name": "coupon_drop", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
           "id": "tpl-coupon", "components": [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Hi {{1}}, here is your code. Reply STOP to opt out."},
        {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "SAVE10"}]}]})
}

fn coupon_campaign(sender: &str, extra: Value) -> Value {
    let mut input = json!({"name": "Coupons", "senderId": sender, "templateName": "coupon_drop",
        "language": "en_US", "variables": ["{{ contact.name }}"],
        "audience": {"filter": {"tags": []}}, "messagesPerSecond": 20});
    for (key, value) in extra.as_object().unwrap() {
        input[key] = value.clone();
    }
    input
}

async fn each_recipient_gets_their_own_header_and_code(app: TestApp) {
    let stand = Stand::new(&app, "PN-CAMP-PARAMS", json!([coupon_template()])).await;
    stand.accepts(Duration::ZERO).await;
    let header =
        json!({"image": {"link": "https://cdn.example.com/{{ contact.attributes.banner }}.jpg"}});
    let buttons = json!([{"index": 0, "couponCode": "{{ contact.attributes.code }}"}]);

    // Missing the coupon, or the wrong kind of header: refused before the campaign exists.
    let no_coupon = app
        .gql(
            CREATE,
            json!({"input": coupon_campaign(&stand.sender, json!({"header": header}))}),
        )
        .await;
    assert_eq!(
        error_code(&no_coupon),
        Some("TEMPLATE_VARIABLES_MISMATCH"),
        "{no_coupon}"
    );
    assert!(
        no_coupon.to_string().contains("buttons[0] (COPY_CODE)"),
        "{no_coupon}"
    );
    let video = app
        .gql(CREATE, json!({"input": coupon_campaign(&stand.sender,
            json!({"header": {"video": {"link": "https://cdn.example.com/a.mp4"}}, "buttons": buttons}))}))
        .await;
    assert_eq!(
        error_code(&video),
        Some("TEMPLATE_VARIABLES_MISMATCH"),
        "{video}"
    );
    let broken = app
        .gql(CREATE, json!({"input": coupon_campaign(&stand.sender,
            json!({"header": header, "buttons": [{"index": 0, "couponCode": "{{ contact.attributes.code"}]}))}))
        .await;
    assert_eq!(error_code(&broken), Some("VALIDATION_FAILED"), "{broken}");
    assert_eq!(error_fields(&broken), ["buttons[0].couponCode"], "{broken}");

    create_contact(
        &app,
        "+14155667001",
        "Ana",
        json!({"banner": "ana", "code": "ANA10"}),
    )
    .await;
    create_contact(
        &app,
        "+14155667002",
        "Bo",
        json!({"banner": "bo", "code": "BO-10"}),
    )
    .await;
    let created = app
        .ok(CREATE, json!({"input": coupon_campaign(&stand.sender, json!({"header": header, "buttons": buttons}))}))
        .await;
    let id = created["createCampaign"]["id"].as_str().unwrap().to_owned();
    let stored = app
        .ok(
            "query($id: ID!) { campaign(id: $id) { templateParameters } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        stored["campaign"]["templateParameters"],
        json!({"header": header, "buttons": buttons})
    );
    lifecycle(&app, "startCampaign", &id).await;
    campaign_becomes(&app, &id, "COMPLETED", Duration::from_secs(30)).await;

    let sends = stand.sends().await;
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["to"], "14155667001");
    assert_eq!(
        sends[0]["template"]["components"],
        json!([
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/ana.jpg"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
            {"type": "button", "sub_type": "copy_code", "index": "0",
             "parameters": [{"type": "coupon_code", "coupon_code": "ANA10"}]}])
    );
    // Bo's code has a dash, which Meta refuses: Bo is skipped with the reason, not sent.
    let skipped = recipients(&app, &id, Some("SKIPPED_INVALID")).await;
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!(skipped[0]["phone"], "+14155667002");
    let reason = skipped[0]["errorMessage"].as_str().unwrap();
    assert!(reason.contains("buttons[0] (COPY_CODE)"), "{reason}");
}

waflow_tests::on_both_databases!(each_recipient_gets_their_own_header_and_code);
