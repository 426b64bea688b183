//! `GET /api/messages/{id}/media` (issue 17): a received image streamed from Meta with its
//! content type, the sender's token sent to Meta only, and the refusals a client can meet.

use serde_json::{Value, json};
use waflow_tests::{ACCESS_TOKEN, APP_SECRET, Meta, TestApp, messages_webhook};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{header, method, path},
};

const PN: &str = "PN-MEDIA";
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0 not really a photo";

fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

/// The customer sends `items` (Meta's messages[] entries).
async fn received(app: &TestApp, items: Value) {
    let body = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "14155550123"}], "messages": items}),
    );
    assert_eq!(app.webhook(&body, Some(APP_SECRET)).await, 200);
}

async fn get(app: &TestApp, key: Option<&str>, message_id: &str) -> reqwest::Response {
    let mut request = app
        .http
        .get(app.url(&format!("/api/messages/{message_id}/media")));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn code_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

async fn received_media_is_streamed_with_its_type(app: TestApp) {
    let meta = Meta::start().await;
    app.cloud_sender(&meta, "+14155550199", PN).await;
    let file = format!("{}/media-files/photo", meta.server.uri());
    Mock::given(method("GET"))
        .and(path("/v21.0/MEDIA-1"))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp",
            "url": file, "mime_type": "image/jpeg", "file_size": JPEG.len(), "id": "MEDIA-1"})),
        )
        .mount(&meta.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/media-files/photo"))
        .and(header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(JPEG))
        .mount(&meta.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v21.0/MEDIA-GONE"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 100,
            "message": "Unsupported get request. Object with ID 'MEDIA-GONE' does not exist"}})),
        )
        .mount(&meta.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v21.0/MEDIA-ELSEWHERE"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp",
            "url": "https://media.example.net/photo", "mime_type": "image/jpeg", "id": "MEDIA-ELSEWHERE"})))
        .mount(&meta.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v21.0/MEDIA-HUGE"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp",
            "url": file, "mime_type": "video/mp4", "file_size": 200u64 << 20, "id": "MEDIA-HUGE"})),
        )
        .mount(&meta.server)
        .await;
    let image = |wamid: &str, media: &str| {
        json!({"from": "14155550123", "id": wamid, "timestamp": now(), "type": "image",
               "image": {"id": media, "mime_type": "image/jpeg", "caption": "this one"}})
    };
    received(
        &app,
        json!([image("wamid.M1", "MEDIA-1"), image("wamid.M2", "MEDIA-GONE"), image("wamid.M3", "MEDIA-ELSEWHERE"), image("wamid.M5", "MEDIA-HUGE"),
               {"from": "14155550123", "id": "wamid.M4", "timestamp": now(), "type": "text", "text": {"body": "hi"}}]),
    )
    .await;
    let mut ids = std::collections::HashMap::new();
    for wamid in ["wamid.M1", "wamid.M2", "wamid.M3", "wamid.M4", "wamid.M5"] {
        ids.insert(wamid, app.message_id_of(wamid).await);
    }
    let id = |wamid: &str| ids[wamid].clone();

    let photo = get(&app, Some(&app.key), &id("wamid.M1")).await;
    assert_eq!(photo.status(), 200);
    assert_eq!(photo.headers()["content-type"], "image/jpeg");
    assert_eq!(photo.bytes().await.unwrap().as_ref(), JPEG);

    assert_eq!(
        code_of(get(&app, None, &id("wamid.M1")).await).await,
        (401, "UNAUTHENTICATED".into())
    );
    let other = app.other_workspace().await;
    assert_eq!(
        code_of(get(&app, Some(&other), &id("wamid.M1")).await).await,
        (404, "NOT_FOUND".into())
    );
    let gone = get(&app, Some(&app.key), &id("wamid.M2")).await;
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("30 days"),
        "{body}"
    );
    assert_eq!(
        code_of(get(&app, Some(&app.key), &id("wamid.M3")).await).await,
        (502, "PROVIDER_ERROR".into())
    );
    assert_eq!(
        code_of(get(&app, Some(&app.key), &id("wamid.M4")).await).await,
        (404, "NOT_FOUND".into())
    );
    assert_eq!(
        code_of(get(&app, Some(&app.key), &uuid::Uuid::now_v7().to_string()).await).await,
        (404, "NOT_FOUND".into())
    );
    // The token went to Meta's stand-in only, and never into an answer.
    assert!(
        !String::from_utf8_lossy(
            &get(&app, Some(&app.key), &id("wamid.M3"))
                .await
                .bytes()
                .await
                .unwrap()
        )
        .contains(ACCESS_TOKEN)
    );
}

waflow_tests::on_both_databases!(received_media_is_streamed_with_its_type);
