//! How far behind the job queues are, for `/metrics`: jobs ready to run, jobs waiting for their
//! time, and how long the oldest ready job has waited. Read from the queue's own storage when
//! asked, so every process reports the one queue they share, and nothing is counted twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{
    error::{Error, Result},
    queue::{JobQueue, Queue, sqlite_queue_name},
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
            Queue::Sqlite(storage) => {
                let (ready, scheduled, oldest): (i64, i64, Option<i64>) =
                    sqlx::query_as(SQLITE_BACKLOG)
                        .bind(sqlite_queue_name(queue))
                        .bind(now.as_secs() as i64)
                        .fetch_one(storage.pool())
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
