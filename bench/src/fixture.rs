//! What the benchmarks set up through the public API (Cloud API senders that talk to the
//! stand-in, their templates) and the signed Meta webhooks they send.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::{Result, setup::Api, stand_in::StandIn};

/// The app secret every bench sender shares (one Meta app).
pub const APP_SECRET: &str = "bench-app-secret";
const BUSINESS_ACCOUNT_ID: &str = "WABA-BENCH";

/// A Cloud API sender of the bench.
#[derive(Clone, Debug)]
pub struct Sender {
    pub id: String,
    pub phone_number_id: String,
}

/// Creates `count` CLOUD_API senders on `stand_in` (rate limit `mps`), and waits until their
/// status refresh made them ONLINE.
pub async fn senders(api: &Api, stand_in: &StandIn, count: usize, mps: u32) -> Result<Vec<Sender>> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let phone_number_id = format!("PN-BENCH-{i}");
        let input = json!({"input": {
            "phoneNumber": format!("+4479200{i:05}"), "displayName": format!("Bench {i}"),
            "provider": "CLOUD_API", "messagesPerSecond": mps,
            "cloudApi": {"phoneNumberId": phone_number_id, "businessAccountId": BUSINESS_ACCOUNT_ID,
                "accessToken": "bench-token", "appSecret": APP_SECRET, "verifyToken": "bench-verify",
                "apiBaseUrl": stand_in.base_url}}});
        let data = api
            .gql(
                "mutation($input: CreateSenderInput!) { createSender(input: $input) { id } }",
                input,
            )
            .await?;
        let id = data["createSender"]["id"].as_str().ok_or("no sender id")?;
        out.push(Sender {
            id: id.to_owned(),
            phone_number_id,
        });
    }
    wait_online(api, count).await?;
    Ok(out)
}

async fn wait_online(api: &Api, count: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let data = api
            .gql(
                "{ senders(first: 100) { edges { node { status } } } }",
                json!({}),
            )
            .await?;
        let online = data["senders"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["node"]["status"] == "ONLINE")
            .count();
        if online >= count.min(100) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("only {online} of {count} senders came ONLINE").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Copies the stand-in's APPROVED template to `sender`.
pub async fn sync_templates(api: &Api, sender: &Sender) -> Result<()> {
    api.gql(
        "mutation($id: ID!) { syncTemplates(senderId: $id) { created updated } }",
        json!({"id": sender.id}),
    )
    .await?;
    Ok(())
}

/// The digits of the `n`th bench customer (UK mobile numbers, valid in libphonenumber).
pub fn customer(n: u64) -> String {
    format!("44790{:07}", n % 10_000_000)
}

/// Meta's `messages` webhook with one text message from `from` (digits) to the sender.
pub fn text_webhook(sender: &Sender, from: &str, text: &str) -> Vec<u8> {
    let wamid = format!("wamid.in.{}", uuid::Uuid::now_v7().simple());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": BUSINESS_ACCOUNT_ID,
        "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "447920000000", "phone_number_id": sender.phone_number_id},
            "contacts": [{"profile": {"name": "Bench Customer"}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": now, "type": "text", "text": {"body": text}}]}}]}]});
    serde_json::to_vec(&body).expect("JSON serializes")
}

/// `sha256=<hex HMAC-SHA256>` of `body` with the app secret, as Meta signs.
pub fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts a signed webhook; answers the HTTP status (0 when the request failed) and the round
/// trip.
pub async fn post_webhook(http: &reqwest::Client, base: &str, body: Vec<u8>) -> (u16, Duration) {
    let signature = sign(&body);
    let started = Instant::now();
    let sent = http
        .post(format!("{base}/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await;
    let status = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the body so the connection goes back to the pool.
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    };
    (status, started.elapsed())
}

/// An HTTP client for the load: a connection per concurrent request, kept alive.
pub fn load_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(30))
        .build()?)
}
