//! Readiness: whether this process can do its work now. A load balancer sends traffic only to
//! ready processes, and an orchestrator holds a rollout until the new ones are: the database
//! answers, Redis answers (in the production profile), and the schema is the one this binary
//! expects.

use std::time::Duration;

use serde::Serialize;

use crate::Services;

/// A check that takes longer than this fails: a probe must answer quickly.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: String,
    /// `None` in the embedded profile, which uses no Redis.
    pub redis: Option<String>,
    pub migrations: String,
}

impl Services {
    /// Runs every check, each bounded in time; never fails, says what is wrong instead.
    pub async fn readiness(&self) -> Readiness {
        let mut ready = true;
        let mut verdict = |outcome: Result<String, String>| {
            outcome.unwrap_or_else(|problem| {
                ready = false;
                problem
            })
        };
        let database = verdict(
            bounded(async { self.db.ping().await.map(|()| "ok".to_owned()) })
                .await
                .map_err(|e| format!("unreachable: {e}")),
        );
        let migrations = verdict(
            bounded(crate::db::pending_migrations(&self.db))
                .await
                .map_err(|e| format!("cannot be read: {e}"))
                .and_then(|pending| match pending {
                    0 => Ok("current".to_owned()),
                    n => Err(format!("{n} pending: run `waflow migrate`")),
                }),
        );
        let redis = match &self.redis {
            None => None,
            Some(connection) => Some(verdict(
                bounded(async {
                    redis::cmd("PING")
                        .query_async::<String>(&mut connection.clone())
                        .await
                        .map(|_| "ok".to_owned())
                })
                .await
                .map_err(|e| format!("unreachable: {e}")),
            )),
        };
        Readiness {
            ready,
            database,
            redis,
            migrations,
        }
    }
}

async fn bounded<T, E: std::fmt::Display>(
    check: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(outcome) => outcome.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}
