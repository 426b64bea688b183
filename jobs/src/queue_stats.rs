//! How far behind the job queues are, for `/metrics`: jobs ready to run, jobs waiting for their
//! time, and how long the oldest ready job has waited. Read from the queue's own storage when
//! asked, so every process reports the one queue they share, and nothing is counted twice.
//!
//! [`RunBacklog`] samples the flow queue's age for the flow webhooks, which refuse new runs while
//! it is past a limit.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    error::{Error, Result},
    queue::{FlowJob, JobQueue, Queue, sqlite_queue_name},
};

/// One queue's backlog.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// `system` or `flows`.
    pub queue: &'static str,
    /// Due jobs no worker has taken yet.
    pub ready: u64,
    /// Jobs whose time has not come (delays, retries, scheduled checks).
    pub scheduled: u64,
    /// How long the oldest ready job has been due; zero when none is.
    pub oldest_ready_age: Duration,
}

impl JobQueue {
    pub async fn stats(&self) -> Result<Vec<QueueStats>> {
        Ok(vec![
            self.system.stats("system").await?,
            self.flows.stats("flows").await?,
        ])
    }
}

fn stats_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("cannot read the job queue: {e}"))
}

/// Jobs a worker may still take: pending and unclaimed, or failed with attempts left.
const SQLITE_BACKLOG: &str = "
    SELECT
        COALESCE(SUM(CASE WHEN run_at <= ?2 THEN 1 ELSE 0 END), 0),
        COALESCE(SUM(CASE WHEN run_at > ?2 THEN 1 ELSE 0 END), 0),
        MIN(CASE WHEN run_at <= ?2 THEN run_at END)
    FROM Jobs
    WHERE job_type = ?1
      AND ((status = 'Pending' AND lock_by IS NULL)
           OR (status = 'Failed' AND attempts < max_attempts))";

impl<J> Queue<J> {
    pub(crate) async fn stats(&self, queue: &'static str) -> Result<QueueStats> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (ready, scheduled, oldest_due) = match self {
            Queue::Sqlite(sqlite) => {
                let (ready, scheduled, oldest): (i64, i64, Option<i64>) =
                    sqlx::query_as(SQLITE_BACKLOG)
                        .bind(sqlite_queue_name(queue))
                        .bind(now.as_secs() as i64)
                        .fetch_one(sqlite.storage.pool())
                        .await
                        .map_err(stats_error)?;
                let oldest = oldest.map(|s| Duration::from_secs(s.max(0) as u64));
                (ready as u64, scheduled as u64, oldest)
            }
            Queue::Redis(storage) => redis_backlog(storage, now).await?,
        };
        Ok(QueueStats {
            queue,
            ready,
            scheduled,
            oldest_ready_age: oldest_due.map_or(Duration::ZERO, |due| now.saturating_sub(due)),
        })
    }
}

/// apalis-redis keeps ready jobs in a list and the others in a set scored by their due second;
/// a worker moves due ones to the list when it polls. Both kinds are ready here. A job in the
/// list has lost its score, but its id carries its due time (`Queue::push`).
async fn redis_backlog<J>(
    storage: &apalis_redis::RedisStorage<J>,
    now: Duration,
) -> Result<(u64, u64, Option<Duration>)> {
    let config = storage.get_config();
    let (active, scheduled_set) = (config.active_jobs_list(), config.scheduled_jobs_set());
    let mut connection = storage.clone().get_connection().clone();
    let now_secs = now.as_secs();
    let (listed, overdue, scheduled, head, oldest_overdue): (
        u64,
        u64,
        u64,
        Option<String>,
        Vec<(String, f64)>,
    ) = redis::pipe()
        .llen(&active)
        .zcount(&scheduled_set, "-inf", now_secs)
        .zcount(&scheduled_set, format!("({now_secs}"), "+inf")
        .lindex(&active, 0)
        .zrangebyscore_limit_withscores(&scheduled_set, "-inf", now_secs, 0, 1)
        .query_async(&mut connection)
        .await
        .map_err(stats_error)?;
    let head_due = head
        .and_then(|id| id.parse::<ulid::Ulid>().ok())
        .map(|id| Duration::from_millis(id.timestamp_ms()));
    let overdue_due = oldest_overdue
        .first()
        .map(|(_, score)| Duration::from_secs(score.max(0.0) as u64));
    let oldest = [head_due, overdue_due].into_iter().flatten().min();
    Ok((listed + overdue, scheduled, oldest))
}

/// How long the flow queue's oldest ready job may have waited before flow webhooks refuse new
/// runs, unless configured otherwise (`WAFLOW_MAX_RUN_BACKLOG_SECONDS`).
pub const DEFAULT_MAX_RUN_BACKLOG: Duration = Duration::from_secs(60);

/// A reading of the flow queue's backlog is reused for this long: at most four reads a second
/// per process, whatever the request rate.
pub const RUN_BACKLOG_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// How long one reading may take before the last one is used again.
const RUN_BACKLOG_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The flow queue's backlog as the flow webhooks (`POST /hooks/flows/{flowId}`) see it: while
/// the oldest ready flow job has waited longer than the limit, they start no run and answer
/// `Error::Unavailable` (503 `UNAVAILABLE` with `Retry-After`), so that an accepted webhook
/// still means a run that starts soon, not one queued behind minutes of work. Only they are
/// refused: Meta's webhook, whose messages would be lost, never is.
///
/// The age is sampled, not read per request: one caller at a time reads it from the queue
/// (Redis or SQLite) when the last reading is older than [`RUN_BACKLOG_SAMPLE_INTERVAL`], and
/// every other caller uses the last reading meanwhile. A queue that cannot be read keeps the
/// last reading (zero before the first): the push that follows reports the outage. Cheap to
/// clone; clones share the reading.
#[derive(Clone)]
pub struct RunBacklog {
    inner: Arc<Sampler>,
}

struct Sampler {
    queue: Queue<FlowJob>,
    /// `None`: never refuse (`WAFLOW_MAX_RUN_BACKLOG_SECONDS=0`).
    limit: Option<Duration>,
    /// When the last reading was taken, and the oldest ready job's age it found.
    last: Mutex<Option<(Instant, Duration)>>,
    /// Set while one caller reads the queue.
    reading: AtomicBool,
}

/// Clears the `reading` flag when the read ends, even when its caller's future is dropped.
struct ReadingFlag<'a>(&'a AtomicBool);

impl Drop for ReadingFlag<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for RunBacklog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunBacklog")
            .field("limit", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

impl RunBacklog {
    /// Watches `queue` (the flow queue), refusing past `limit`; `None` never refuses.
    pub fn new(queue: Queue<FlowJob>, limit: Option<Duration>) -> Self {
        Self {
            inner: Arc::new(Sampler {
                queue,
                limit,
                last: Mutex::new(None),
                reading: AtomicBool::new(false),
            }),
        }
    }

    /// The oldest ready job's age past which new runs are refused; `None` when they never are.
    pub fn limit(&self) -> Option<Duration> {
        self.inner.limit
    }

    /// Seconds a refused caller is told to wait (`Retry-After`): a quarter of the limit,
    /// rounded up, at least 1 (15 with the default limit of 60 s).
    pub fn retry_after_seconds(limit: Duration) -> u64 {
        limit.as_secs().div_ceil(4).max(1)
    }

    /// `Ok` when a new run may be queued: no limit, or the flow queue's oldest ready job has
    /// waited no longer than it. Otherwise `Error::Unavailable`, with
    /// [`retry_after_seconds`](Self::retry_after_seconds).
    pub async fn check(&self) -> Result<()> {
        let Some(limit) = self.inner.limit else {
            return Ok(());
        };
        let age = self.age().await;
        if age <= limit {
            return Ok(());
        }
        Err(Error::Unavailable {
            reason: format!(
                "the flow queue is behind (its oldest waiting run has waited {} s, more than \
                 the {} s allowed): no run was started",
                age.as_secs(),
                limit.as_secs()
            ),
            retry_after_seconds: Self::retry_after_seconds(limit),
        })
    }

    /// How long the flow queue's oldest ready job has waited, as of the last reading (at most
    /// [`RUN_BACKLOG_SAMPLE_INTERVAL`] old, or being taken by another caller).
    pub async fn age(&self) -> Duration {
        let sampler = &*self.inner;
        let last = *sampler.last.lock().expect("not poisoned");
        let fresh = last.is_some_and(|(at, _)| at.elapsed() < RUN_BACKLOG_SAMPLE_INTERVAL);
        let last_age = last.map_or(Duration::ZERO, |(_, age)| age);
        // Fresh enough, or another caller is reading it now: the last reading will do.
        if fresh || sampler.reading.swap(true, Ordering::Acquire) {
            return last_age;
        }
        let _flag = ReadingFlag(&sampler.reading);
        let read =
            tokio::time::timeout(RUN_BACKLOG_READ_TIMEOUT, sampler.queue.stats("flows")).await;
        let age = match read {
            Ok(Ok(stats)) => stats.oldest_ready_age,
            Ok(Err(error)) => {
                tracing::debug!(%error, "cannot sample the flow queue's backlog");
                last_age
            }
            Err(_) => {
                tracing::debug!("sampling the flow queue's backlog timed out");
                last_age
            }
        };
        *sampler.last.lock().expect("not poisoned") = Some((Instant::now(), age));
        age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An embedded flow queue over a private in-memory database, with `limit`.
    async fn backlog(limit: Option<Duration>) -> (RunBacklog, crate::Services) {
        let db = crate::db::connect("sqlite::memory:").await.unwrap();
        let services = crate::Services::embedded_context(db, crate::SecretBox::random())
            .await
            .unwrap();
        (
            RunBacklog::new(services.jobs.flows.clone(), limit),
            services,
        )
    }

    /// A flow job that has been due for `seconds`.
    async fn overdue_job(services: &crate::Services, seconds: i64) {
        use sea_orm::ConnectionTrait;
        let run_id = uuid::Uuid::now_v7();
        services
            .jobs
            .flows
            .push(
                FlowJob::Run {
                    run_id,
                    token: None,
                },
                None,
            )
            .await
            .unwrap();
        services
            .db
            .execute_unprepared(&format!(
                "UPDATE Jobs SET run_at = run_at - {seconds} WHERE job_type = 'waflow-flows'"
            ))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_age_is_sampled_and_refuses_past_the_limit() {
        let (backlog, services) = backlog(Some(Duration::from_secs(4))).await;
        assert_eq!(backlog.age().await, Duration::ZERO);
        overdue_job(&services, 10).await;
        // The reading just taken is reused: no read until it is RUN_BACKLOG_SAMPLE_INTERVAL old.
        assert_eq!(backlog.age().await, Duration::ZERO);
        assert!(backlog.check().await.is_ok());
        tokio::time::sleep(RUN_BACKLOG_SAMPLE_INTERVAL + Duration::from_millis(20)).await;
        assert!(backlog.age().await >= Duration::from_secs(10));
        match backlog.check().await {
            Err(Error::Unavailable {
                retry_after_seconds,
                reason,
            }) => {
                assert_eq!(retry_after_seconds, 1);
                assert!(reason.contains("more than the 4 s allowed"), "{reason}");
            }
            other => panic!("expected UNAVAILABLE, got {other:?}"),
        }
        // Clones share the reading.
        assert!(backlog.clone().check().await.is_err());
    }

    #[tokio::test]
    async fn no_limit_never_refuses() {
        let (backlog, services) = backlog(None).await;
        overdue_job(&services, 3600).await;
        assert!(backlog.check().await.is_ok());
    }

    #[test]
    fn retry_after_is_a_quarter_of_the_limit_and_at_least_a_second() {
        let retry = |s| RunBacklog::retry_after_seconds(Duration::from_secs(s));
        assert_eq!((retry(1), retry(4), retry(5), retry(60)), (1, 1, 2, 15));
    }
}
