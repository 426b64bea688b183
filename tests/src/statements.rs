//! The statements the server's own connection sends, for tests of what a unit of work costs
//! the database (issue 20's "work per unit"): installed before the server starts, kept only
//! while counting and only when they contain one of the patterns asked about (a table's name,
//! or a piece of the SQL the ORM writes).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use waflow_jobs::Services;

use crate::{Backend, TestApp, spawn_app_with};

/// A server whose statements containing one of `patterns` are logged while counting. The
/// reconciler, which reads runs on its own schedule, is kept out of the window.
pub async fn spawn_app_logging(
    backend: Backend,
    patterns: &'static [&'static str],
) -> Option<(TestApp, StatementLog)> {
    let statements = StatementLog::default();
    let log = statements.clone();
    let app = spawn_app_with(backend, move |services| {
        services.runs.reconcile_every = std::time::Duration::from_secs(3600);
        log.install(services, patterns);
    })
    .await?;
    Some((app, statements))
}

/// A log of the statements that contain one of its patterns. Cheap to clone; clones share it.
#[derive(Clone, Default)]
pub struct StatementLog {
    counting: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl StatementLog {
    /// Logs, from now on, the statements of `services.db` that contain one of `patterns` (call
    /// it in `spawn_app_with`'s `configure`). It replaces any metric callback set before.
    pub fn install(&self, services: &mut Services, patterns: &'static [&'static str]) {
        let log = self.clone();
        services.db.set_metric_callback(move |info| {
            let sql = info.statement.sql.as_str();
            if log.counting.load(Ordering::SeqCst) && patterns.iter().any(|p| sql.contains(p)) {
                log.seen.lock().unwrap().push(sql.to_owned());
            }
        });
    }

    /// Starts or stops counting; what was seen is kept until `take`.
    pub fn count(&self, counting: bool) {
        self.counting.store(counting, Ordering::SeqCst);
    }

    /// Stops counting and returns what was seen, in order.
    pub fn take(&self) -> Vec<String> {
        self.count(false);
        std::mem::take(&mut self.seen.lock().unwrap())
    }
}

/// The verb each statement starts with (`INSERT`, `SELECT`, …), in order.
pub fn verbs(statements: &[String]) -> Vec<&str> {
    statements
        .iter()
        .map(|sql| sql.split_whitespace().next().unwrap_or_default())
        .collect()
}
