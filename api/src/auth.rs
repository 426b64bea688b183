//! Who is calling: the API key of every GraphQL request, WebSocket and REST call, checked in
//! one place, with failures throttled per client address. After `FAILURES_PER_MINUTE` failed
//! attempts an address gets 429 with `Retry-After` for its unknown keys, answered without a
//! database query; a key that worked recently still works from there (a client behind the same
//! proxy as an attacker keeps working).
//!
//! REST handlers take a [`Caller`] argument, which authenticates the request before the handler
//! runs and answers a refusal in the one error shape ([`RestError`]).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};
use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use sha2::{Digest, Sha256};
use waflow_jobs::{Error, Services, api_keys::Principal};

use crate::rest_error::RestError;

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
    fn failed(&self, peer: IpAddr, error: Error) -> RestError {
        match self.failures.check_key(&peer) {
            Ok(()) => error.into(),
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
    pub fn note_failure(&self, peer: IpAddr, error: Error) -> RestError {
        self.failed(peer, error)
    }
}

fn too_many(seconds: u64) -> RestError {
    RestError::rate_limited(
        seconds,
        format!("too many failed attempts from this address: try again in {seconds} s"),
    )
}

impl AuthGate {
    /// The principal of `bearer`, or the refusal to answer `peer` with: 401 for a wrong key,
    /// 429 once `peer` failed too often, 503 when the database cannot say.
    pub async fn authenticate(
        &self,
        services: &Services,
        peer: IpAddr,
        bearer: Option<&str>,
    ) -> Result<Principal, RestError> {
        if let Some(wait) = self.blocked_for(peer)
            && !bearer.is_some_and(|key| self.has_worked(key))
        {
            return Err(too_many(wait));
        }
        match services.api_keys().authenticate(bearer).await {
            Ok(principal) => {
                if let Some(key) = bearer {
                    self.worked(key);
                }
                Ok(principal)
            }
            Err(error @ Error::Unauthenticated) => Err(self.failed(peer, error)),
            Err(error) => {
                // The key could not be checked: the database is out of reach. Nothing ran, so
                // the client may safely send the same request again.
                tracing::error!(?error, "authenticating a request failed");
                Err(RestError::unavailable(
                    "Waflow cannot reach its database; try again shortly",
                ))
            }
        }
    }
}

/// The key of an `Authorization: Bearer KEY` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    strip_bearer(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// `KEY` from `Bearer KEY` (either case of the scheme), wherever the value came from.
pub fn strip_bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
}

/// The authenticated caller of a REST endpoint, from its `Authorization: Bearer KEY` header.
/// As an extractor it refuses the request before the handler runs: 401 `UNAUTHENTICATED`, 429
/// `RATE_LIMITED` (with `Retry-After`) or 503 `UNAVAILABLE`. Put it before extractors that can
/// refuse, so a caller without a key learns nothing else about the request.
pub struct Caller(pub Principal);

/// A router state that can authenticate callers (the server's `AppState`); named here so this
/// module need not know the state that holds it.
pub trait Authenticator {
    fn auth_gate(&self) -> &AuthGate;
    fn services(&self) -> &Services;
}

impl<S: Authenticator + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, RestError> {
        let ConnectInfo(peer) =
            ConnectInfo::<std::net::SocketAddr>::from_request_parts(parts, state)
                .await
                .map_err(|_| {
                    // Only a server started without `into_make_service_with_connect_info`.
                    Error::Internal("no client address to count failures against".into())
                })?;
        state
            .auth_gate()
            .authenticate(state.services(), peer.ip(), bearer(&parts.headers))
            .await
            .map(Caller)
    }
}
