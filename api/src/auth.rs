//! Who is calling: the API key of every GraphQL request, WebSocket and REST call, checked in
//! one place, with failures throttled per client address. After `FAILURES_PER_MINUTE` failed
//! attempts an address gets 429 with `Retry-After` for its unknown keys, answered without a
//! database query; a key that worked recently still works from there (a client behind the same
//! proxy as an attacker keeps working).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use sha2::{Digest, Sha256};
use waflow_jobs::{Error, api_keys::Principal};

use crate::app::AppState;

/// Failed attempts an address may make per minute (its burst, too).
pub const FAILURES_PER_MINUTE: u32 = 20;
/// Keys remembered as having worked, for addresses over their budget.
const REMEMBERED_KEYS: usize = 10_000;

/// The failure budgets of client addresses, and the keys that worked lately. Cheap to clone.
#[derive(Clone)]
pub struct AuthGate {
    failures: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses that spent their budget, until when.
    blocked: Arc<Mutex<HashMap<IpAddr, Instant>>>,
    worked: Arc<Mutex<HashSet<[u8; 32]>>>,
}

impl Default for AuthGate {
    fn default() -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(FAILURES_PER_MINUTE).expect("not zero"));
        Self {
            failures: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            blocked: Arc::default(),
            worked: Arc::default(),
        }
    }
}

/// Why a call was refused, and how to say it.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut extensions = serde_json::json!({"code": self.code});
        if let Some(seconds) = self.retry_after {
            extensions["retryAfterSeconds"] = seconds.into();
        }
        let body =
            serde_json::json!({"errors": [{"message": self.message, "extensions": extensions}]});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits"),
            );
        }
        response
    }
}

fn fingerprint(key: &str) -> [u8; 32] {
    Sha256::digest(key.trim().as_bytes()).into()
}

impl AuthGate {
    /// The seconds `peer` must still wait, when it spent its budget.
    fn blocked_for(&self, peer: IpAddr) -> Option<u64> {
        let mut blocked = self.blocked.lock().expect("auth gate lock");
        let until = *blocked.get(&peer)?;
        let now = Instant::now();
        if until <= now {
            blocked.remove(&peer);
            return None;
        }
        Some((until - now).as_secs().max(1))
    }

    /// Records a failed attempt of `peer`; the refusal to give it.
    fn failed(&self, peer: IpAddr, error: &Error) -> Refusal {
        match self.failures.check_key(&peer) {
            Ok(()) => Refusal {
                status: StatusCode::UNAUTHORIZED,
                code: error.code(),
                message: error.public_message(),
                retry_after: None,
            },
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut blocked = self.blocked.lock().expect("auth gate lock");
                blocked.retain(|_, until| *until > Instant::now());
                blocked.insert(peer, Instant::now() + wait);
                self.failures.retain_recent();
                too_many(wait.as_secs().max(1))
            }
        }
    }

    fn worked(&self, key: &str) {
        let mut worked = self.worked.lock().expect("auth gate lock");
        if worked.len() >= REMEMBERED_KEYS {
            worked.clear();
        }
        worked.insert(fingerprint(key));
    }

    fn has_worked(&self, key: &str) -> bool {
        self.worked
            .lock()
            .expect("auth gate lock")
            .contains(&fingerprint(key))
    }

    /// A failure some other check found (a flow webhook's secret): counted like a wrong key.
    pub fn note_failure(&self, peer: IpAddr, error: &Error) -> Refusal {
        self.failed(peer, error)
    }
}

fn too_many(seconds: u64) -> Refusal {
    Refusal {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "RATE_LIMITED",
        message: format!("too many failed attempts from this address: try again in {seconds} s"),
        retry_after: Some(seconds),
    }
}

/// The principal of `bearer`, or the refusal to answer `peer` with: 401 for a wrong key, 429
/// once `peer` failed too often, 503 when the database cannot say.
pub async fn authenticate(
    state: &AppState,
    peer: IpAddr,
    bearer: Option<&str>,
) -> Result<Principal, Refusal> {
    let gate = &state.auth;
    if let Some(wait) = gate.blocked_for(peer)
        && !bearer.is_some_and(|key| gate.has_worked(key))
    {
        return Err(too_many(wait));
    }
    match state.services.api_keys().authenticate(bearer).await {
        Ok(principal) => {
            if let Some(key) = bearer {
                gate.worked(key);
            }
            Ok(principal)
        }
        Err(error @ Error::Unauthenticated) => Err(gate.failed(peer, &error)),
        Err(error) => {
            // The key could not be checked: the database is out of reach. Nothing ran, so the
            // client may safely send the same request again.
            tracing::error!(?error, "authenticating a request failed");
            Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "UNAVAILABLE",
                message: "Waflow cannot reach its database; try again shortly".into(),
                retry_after: None,
            })
        }
    }
}
