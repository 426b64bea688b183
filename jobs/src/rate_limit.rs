//! Per-sender send rate limits. A sender may send `messages_per_second` messages in any second
//! (bursts up to that many), measured with GCRA. In the embedded profile the state lives in this
//! process (governor); in the production profile it lives in Redis, updated by one atomic script,
//! so every process shares one budget per sender. A refused send learns when to retry; nothing
//! sleeps.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    Quota, RateLimiter as Governor, clock::Clock, clock::DefaultClock, state::InMemoryState,
    state::NotKeyed,
};
use uuid::Uuid;

use crate::error::{Error, Result};

type Direct = Governor<NotKeyed, InMemoryState, DefaultClock>;
/// Each sender's limiter with the rate it was made for.
type Limiters = Arc<Mutex<HashMap<Uuid, (u32, Arc<Direct>)>>>;

#[derive(Clone)]
pub enum RateLimiter {
    InProcess(Limiters),
    Redis {
        connection: redis::aio::ConnectionManager,
        prefix: String,
    },
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateLimiter::InProcess(_) => f.write_str("RateLimiter::InProcess"),
            RateLimiter::Redis { prefix, .. } => write!(f, "RateLimiter::Redis({prefix})"),
        }
    }
}

/// GCRA over Redis: the key holds the theoretical arrival time (TAT) in microseconds of the
/// server's clock, so processes with skewed clocks still agree. Returns 0 when the send may go,
/// else the microseconds to wait.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - interval * burst
if now < allowed_at then return allowed_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"#;

impl RateLimiter {
    pub fn in_process() -> Self {
        RateLimiter::InProcess(Arc::default())
    }

    /// Shares limits through Redis; `prefix` namespaces the keys (per deployment or per test).
    pub fn redis(connection: redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        RateLimiter::Redis {
            connection,
            prefix: prefix.into(),
        }
    }

    /// Takes one send from `sender_id`'s budget, or answers RATE_LIMITED with when to retry.
    pub async fn acquire(&self, sender_id: Uuid, per_second: i32) -> Result<()> {
        let per_second = NonZeroU32::new(per_second.max(1) as u32).expect("at least 1");
        let wait = match self {
            RateLimiter::InProcess(limiters) => {
                let limiter = {
                    let mut map = limiters.lock().expect("rate limiter lock");
                    let entry = map.entry(sender_id).or_insert_with(|| {
                        (
                            per_second.get(),
                            Arc::new(Governor::direct(Quota::per_second(per_second))),
                        )
                    });
                    // A changed limit starts a fresh budget at the new rate.
                    if entry.0 != per_second.get() {
                        *entry = (
                            per_second.get(),
                            Arc::new(Governor::direct(Quota::per_second(per_second))),
                        );
                    }
                    entry.1.clone()
                };
                match limiter.check() {
                    Ok(()) => None,
                    Err(not_until) => Some(not_until.wait_time_from(DefaultClock::default().now())),
                }
            }
            RateLimiter::Redis { connection, prefix } => {
                let interval_us = 1_000_000 / u64::from(per_second.get());
                let waited: u64 = redis::Script::new(GCRA)
                    .key(format!("{prefix}ratelimit:sender:{sender_id}"))
                    .arg(interval_us)
                    .arg(per_second.get())
                    .invoke_async(&mut connection.clone())
                    .await
                    .map_err(|e| Error::Internal(format!("rate limiter unavailable: {e}")))?;
                (waited > 0).then(|| Duration::from_micros(waited))
            }
        };
        match wait {
            None => Ok(()),
            Some(wait) => Err(Error::RateLimited {
                retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
            }),
        }
    }
}
