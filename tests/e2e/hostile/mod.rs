//! A hostile workspace against the server: each attack an issue found, and what the attacker
//! gets instead (a clear error), while the server keeps answering `/healthz` within a second.
//! (Its memory is watched by the process test `api/tests/hostile.rs`, where the server is a
//! process of its own; here it shares one with every other test.)

mod auth;
mod flows;
mod graphql;
mod import;
mod keys;
mod replay;
mod templates;
mod urls;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use waflow_tests::TestApp;

/// Watches the server while an attack runs: `/healthz` asked every 100 ms.
pub struct Watch {
    stop: Arc<AtomicBool>,
    slowest_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub fn start(app: &TestApp) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let (http, url) = (app.http.clone(), app.url("/healthz"));
        let task = tokio::spawn({
            let (stop, slowest_ms) = (stop.clone(), slowest_ms.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    let asked = Instant::now();
                    let answer =
                        tokio::time::timeout(Duration::from_secs(5), http.get(&url).send());
                    let answered = answer
                        .await
                        .is_ok_and(|r| r.is_ok_and(|r| r.status() == 200));
                    let took = if answered {
                        asked.elapsed().as_millis() as u64
                    } else {
                        u64::MAX
                    };
                    slowest_ms.fetch_max(took, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self {
            stop,
            slowest_ms,
            task,
        }
    }

    /// Stops watching; panics if `/healthz` ever took a second or more.
    pub async fn held_up(self, attack: &str) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let slowest = self.slowest_ms.load(Ordering::SeqCst);
        assert!(
            slowest < 1000,
            "during {attack}, /healthz took {slowest} ms (u64::MAX: no answer)"
        );
    }
}
