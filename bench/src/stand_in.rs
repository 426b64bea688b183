//! A local stand-in for Meta's WhatsApp Cloud API, in the bench process: it reports every
//! number CONNECTED, lists one APPROVED template, and answers `POST /{phone_number_id}/messages`
//! with a fresh wamid while recording when each recipient's message arrived.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::Result;

/// The template the stand-in lists for every business account.
pub const TEMPLATE: &str = "bench_hello";

#[derive(Default)]
struct Inner {
    /// Recipient digits → when their (first) message arrived.
    arrivals: Mutex<HashMap<String, Instant>>,
    sends: AtomicU64,
}

/// A running stand-in; its server stops with the bench process.
#[derive(Clone)]
pub struct StandIn {
    /// What senders take as `apiBaseUrl`.
    pub base_url: String,
    inner: Arc<Inner>,
}

impl StandIn {
    pub async fn start() -> Result<Self> {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/v21.0/{id}", get(phone_number))
            .route("/v21.0/{id}/message_templates", get(templates))
            .route("/v21.0/{id}/messages", post(send))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}/v21.0", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url, inner })
    }

    /// How many sends arrived so far.
    pub fn sends(&self) -> u64 {
        self.inner.sends.load(Ordering::Relaxed)
    }

    /// A copy of the arrival time per recipient (digits, no `+`).
    pub fn arrivals(&self) -> HashMap<String, Instant> {
        self.inner.arrivals.lock().expect("not poisoned").clone()
    }
}

async fn phone_number(Path(id): Path<String>) -> Json<Value> {
    Json(json!({
        "id": id, "display_phone_number": "+44 7920 000000", "verified_name": "Bench",
        "quality_rating": "GREEN", "status": "CONNECTED", "messaging_limit_tier": "TIER_UNLIMITED",
        "name_status": "APPROVED"
    }))
}

async fn templates() -> Json<Value> {
    Json(json!({"data": [{
        "id": "1000", "name": TEMPLATE, "language": "en", "status": "APPROVED", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Thanks for your message, we are on it."}]
    }]}))
}

async fn send(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Json<Value> {
    let now = Instant::now();
    let to = body["to"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches('+');
    inner.sends.fetch_add(1, Ordering::Relaxed);
    inner
        .arrivals
        .lock()
        .expect("not poisoned")
        .entry(to.to_owned())
        .or_insert(now);
    let wamid = format!("wamid.{}", uuid::Uuid::now_v7().simple());
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": wamid}]
    }))
}
