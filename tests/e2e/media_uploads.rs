//! `POST /api/senders/{id}/media` (issue 17): a file goes to Meta's media store as Meta's
//! multipart form and is then sent by its id; files WhatsApp would refuse (type, size per kind,
//! empty) are refused before a byte leaves, and the refusals a client can meet.

use serde_json::{Value, json};
use waflow_tests::{ACCESS_TOKEN, APP_SECRET, Meta, TestApp, eventually, messages_webhook};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

const PN: &str = "PN-UPLOAD";
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0 a photo of a receipt";

/// How a test sends the file: with its length, or as a stream of unknown length.
#[derive(Clone, Copy)]
enum Length {
    Known,
    Unknown,
}

async fn upload(
    app: &TestApp,
    key: Option<&str>,
    sender: &str,
    content_type: &str,
    bytes: Vec<u8>,
    length: Length,
) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url(&format!("/api/senders/{sender}/media?filename=receipt.jpg")))
        .header("content-type", content_type);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request = match length {
        Length::Known => request.body(bytes),
        Length::Unknown => {
            let chunks = bytes
                .chunks(64 << 10)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>();
            request.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        }
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

/// Meta's media store answers every upload with `MEDIA-UP-<n>`.
async fn meta_stores_media(meta: &Meta) {
    struct Stores(std::sync::atomic::AtomicUsize);
    impl wiremock::Respond for Stores {
        fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(json!({"id": format!("MEDIA-UP-{n}")}))
        }
    }
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/media")))
        .respond_with(Stores(0.into()))
        .mount(&meta.server)
        .await;
}

/// A WebP file of `size` bytes whose extended header says animated or not.
fn webp(size: usize, animated: bool) -> Vec<u8> {
    let mut bytes = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
    bytes.push(if animated { 0x02 } else { 0 });
    bytes.resize(size, 0);
    bytes
}

async fn a_file_reaches_metas_media_store_and_is_sent_by_its_id(app: TestApp) {
    let meta = Meta::start().await;
    meta.accepts_messages(PN).await;
    meta_stores_media(&meta).await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;

    let (status, uploaded) = upload(
        &app,
        Some(&app.key),
        &sender,
        "image/jpeg",
        JPEG.to_vec(),
        Length::Known,
    )
    .await;
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(
        uploaded,
        json!({"id": "MEDIA-UP-1", "kind": "IMAGE", "mimeType": "image/jpeg", "bytes": JPEG.len()})
    );
    let requests = meta.requests("POST", &format!("/{PN}/media")).await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {ACCESS_TOKEN}").as_str()
    );
    let content_type = request.headers["content-type"].to_str().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("not a multipart form: {content_type}"));
    let parts = parts(&request.body, boundary);
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(
        parts[0],
        (
            "Content-Disposition: form-data; name=\"messaging_product\"".into(),
            b"whatsapp".to_vec()
        )
    );
    assert_eq!(
        parts[1],
        (
            "Content-Disposition: form-data; name=\"type\"".into(),
            b"image/jpeg".to_vec()
        )
    );
    assert_eq!(
        parts[2],
        (
            "Content-Disposition: form-data; name=\"file\"; filename=\"receipt.jpg\"\r\nContent-Type: image/jpeg".into(),
            JPEG.to_vec()
        )
    );

    // The id is what a message names.
    let inbound = messages_webhook(
        PN,
        json!({"contacts": [{"profile": {"name": "Ana"}, "wa_id": "14155550123"}],
               "messages": [{"from": "14155550123", "id": "wamid.UP-IN", "timestamp": chrono::Utc::now().timestamp().to_string(),
                             "type": "text", "text": {"body": "send me the receipt"}}]}),
    );
    assert_eq!(app.webhook(&inbound, Some(APP_SECRET)).await, 200);
    app.message_id_of("wamid.UP-IN").await;
    app.ok(
        "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
        json!({"input": {"senderId": sender, "to": "+14155550123", "content": {"image": {"id": uploaded["id"], "caption": "Your receipt"}}}}),
    )
    .await;
    let sent = eventually("the image to reach Meta", || async {
        meta.requests("POST", &format!("/{PN}/messages"))
            .await
            .pop()
    })
    .await;
    let sent: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(sent["type"], "image");
    assert_eq!(
        sent["image"],
        json!({"id": "MEDIA-UP-1", "caption": "Your receipt"})
    );
}

waflow_tests::on_both_databases!(a_file_reaches_metas_media_store_and_is_sent_by_its_id);

/// The parts of a multipart body: each part's headers (one string) and its bytes.
fn parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let rest_part = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let end = find(rest_part, delimiter.as_bytes()).unwrap_or(rest_part.len());
        let part = &rest_part[..end];
        let split = find(part, b"\r\n\r\n").expect("part headers");
        let headers = String::from_utf8_lossy(&part[..split]).into_owned();
        let content = part[split + 4..]
            .strip_suffix(b"\r\n")
            .unwrap_or(&part[split + 4..]);
        out.push((headers, content.to_vec()));
        rest = &rest_part[end..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn files_whatsapp_refuses_never_leave(app: TestApp) {
    let meta = Meta::start().await;
    meta_stores_media(&meta).await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    let cases: Vec<(&str, Vec<u8>, Length, &str)> = vec![
        (
            "image/gif",
            b"GIF89a".to_vec(),
            Length::Known,
            "contentType",
        ),
        ("", JPEG.to_vec(), Length::Known, "contentType"),
        ("image/jpeg", vec![], Length::Known, "file"),
        (
            "image/jpeg",
            vec![0xFF; (5 << 20) + 1],
            Length::Known,
            "file",
        ),
        (
            "image/png",
            vec![0x89; (5 << 20) + 1],
            Length::Unknown,
            "file",
        ),
        ("video/mp4", vec![0; (16 << 20) + 1], Length::Known, "file"),
        (
            "audio/ogg; codecs=opus",
            vec![0; (16 << 20) + 1],
            Length::Unknown,
            "file",
        ),
        (
            "image/webp",
            webp((100 << 10) + 1, false),
            Length::Known,
            "file",
        ),
        (
            "image/webp",
            webp((500 << 10) + 1, true),
            Length::Known,
            "file",
        ),
    ];
    for (content_type, bytes, length, field) in cases {
        let (status, body) =
            upload(&app, Some(&app.key), &sender, content_type, bytes, length).await;
        assert_eq!(
            (status, code(&body)),
            (400, "VALIDATION_FAILED"),
            "{content_type}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{content_type}: {message}"
        );
    }
    assert!(
        meta.requests("POST", "/media").await.is_empty(),
        "a refused file reached Meta"
    );

    // At the limit, and an animated sticker above the static limit, go through.
    let accepted: Vec<(&str, Vec<u8>, Length, &str)> = vec![
        ("image/jpeg", vec![0xFF; 5 << 20], Length::Unknown, "IMAGE"),
        (
            "image/webp",
            webp((500 << 10) - 1, true),
            Length::Known,
            "STICKER",
        ),
        (
            "image/webp",
            webp(100 << 10, false),
            Length::Unknown,
            "STICKER",
        ),
        (
            "application/pdf",
            b"%PDF-1.7".to_vec(),
            Length::Known,
            "DOCUMENT",
        ),
    ];
    for (content_type, bytes, length, kind) in accepted {
        let size = bytes.len();
        let (status, body) =
            upload(&app, Some(&app.key), &sender, content_type, bytes, length).await;
        assert_eq!(status, 200, "{content_type}: {body}");
        assert_eq!(
            (body["kind"].as_str(), body["bytes"].as_u64()),
            (Some(kind), Some(size as u64))
        );
    }
    let stored = meta.requests("POST", "/media").await;
    assert_eq!(stored.len(), 4);
    assert!(
        stored[0].body.len() > 5 << 20,
        "the whole file reached Meta"
    );
}

waflow_tests::on_both_databases!(files_whatsapp_refuses_never_leave);

async fn upload_refusals_a_client_can_meet(app: TestApp) {
    let meta = Meta::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PN}/media")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 131053,
            "message": "Media upload error", "error_data": {"details": "Unsupported image dimensions"}}})))
        .mount(&meta.server)
        .await;
    let sender = app.cloud_sender(&meta, "+14155550199", PN).await;
    let jpeg = || JPEG.to_vec();

    let (status, body) = upload(&app, None, &sender, "image/jpeg", jpeg(), Length::Known).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"));
    let other = app.other_workspace().await;
    let (status, body) = upload(
        &app,
        Some(&other),
        &sender,
        "image/jpeg",
        jpeg(),
        Length::Known,
    )
    .await;
    assert_eq!((status, code(&body)), (404, "SENDER_NOT_FOUND"));
    let (status, body) = upload(
        &app,
        Some(&app.key),
        "not-an-id",
        "image/jpeg",
        jpeg(),
        Length::Known,
    )
    .await;
    assert_eq!((status, code(&body)), (404, "SENDER_NOT_FOUND"));
    let (status, body) = upload(
        &app,
        Some(&app.key),
        &sender,
        "image/jpeg",
        jpeg(),
        Length::Known,
    )
    .await;
    assert_eq!((status, code(&body)), (502, "PROVIDER_ERROR"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("Unsupported image dimensions"),
        "{message}"
    );
    assert!(!body.to_string().contains(ACCESS_TOKEN));

    // A SANDBOX sender checks the same and keeps nothing: its id is its own.
    let sandbox = app.sandbox_sender("+14155550100").await;
    let (status, body) = upload(
        &app,
        Some(&app.key),
        &sandbox,
        "image/jpeg",
        jpeg(),
        Length::Known,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["id"].as_str().unwrap().starts_with("sandbox."),
        "{body}"
    );
    let (status, body) = upload(
        &app,
        Some(&app.key),
        &sandbox,
        "image/gif",
        jpeg(),
        Length::Known,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "VALIDATION_FAILED"));
}

waflow_tests::on_both_databases!(upload_refusals_a_client_can_meet);
