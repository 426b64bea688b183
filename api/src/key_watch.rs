//! Open WebSockets by the API key that opened them, so that revoking a key closes them
//! (4403) within seconds, on every process: the revocation comes over the event bus at once,
//! and a sweep every few seconds asks the database which of the keys in use still work, for
//! a revocation whose event was lost (Redis away at that moment).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use tokio::sync::{broadcast::error::RecvError, watch};
use uuid::Uuid;
use waflow_jobs::{Services, events::EventPayload};

/// How often the keys of open connections are checked in the database.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The keys this process's connections use. Cheap to clone.
#[derive(Clone, Default)]
pub struct KeyWatch {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `true` once the key is revoked; a key whose receivers are all gone is dropped.
    keys: Mutex<HashMap<Uuid, watch::Sender<bool>>>,
    started: OnceLock<()>,
}

impl KeyWatch {
    /// Turns `true` when `api_key_id` is revoked. Keep it for as long as the connection lives.
    pub fn watch(&self, services: &Services, api_key_id: Uuid) -> watch::Receiver<bool> {
        self.inner.started.get_or_init(|| {
            tokio::spawn(keep_watch(Arc::downgrade(&self.inner), services.clone()));
        });
        let mut keys = self.inner.keys.lock().expect("key watch lock");
        keys.entry(api_key_id)
            .or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }
}

impl Inner {
    fn revoke(&self, api_key_id: Uuid) {
        if let Some(key) = self.keys.lock().expect("key watch lock").get(&api_key_id) {
            key.send_replace(true);
        }
    }

    /// The keys some connection still uses; the others are forgotten.
    fn in_use(&self) -> Vec<Uuid> {
        let mut keys = self.keys.lock().expect("key watch lock");
        keys.retain(|_, key| key.receiver_count() > 0);
        keys.keys().copied().collect()
    }
}

/// Runs for as long as the watch exists.
async fn keep_watch(inner: Weak<Inner>, services: Services) {
    let mut revocations = services.events.subscribe_control();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        let sweep_now = tokio::select! {
            event = revocations.recv() => match event {
                Ok(event) => {
                    if let (EventPayload::ApiKeyRevoked(revoked), Some(inner)) =
                        (&event.payload, inner.upgrade())
                    {
                        inner.revoke(revoked.api_key_id);
                    }
                    false
                }
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
            _ = sweep.tick() => true,
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if sweep_now {
            let in_use = strong.in_use();
            drop(strong);
            match services.api_keys().active_among(in_use.clone()).await {
                Ok(active) => {
                    let Some(strong) = inner.upgrade() else {
                        return;
                    };
                    for key in in_use.into_iter().filter(|k| !active.contains(k)) {
                        strong.revoke(key);
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot check the keys of open connections"),
            }
        }
    }
}
