//! Background jobs and the queue they wait in. A job carries ids, never state: the state is in
//! the database, so a job that runs late, twice or on another process still does the right thing.
//! The embedded profile keeps the queue in the SQLite database (apalis-sqlite); the production
//! profile keeps it in Redis (apalis-redis), shared by every process.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{TaskBuilder, TaskId, TaskSink, TaskSinkError};
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;
use waflow_entities::{
    enums::{MessageStatus, SenderProvider},
    message, sender,
};

use crate::error::{Error, Result};

/// Work the system does in the background (flow runs get their own queue later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SystemJob {
    /// The sandbox provider reporting a delivery status, as Meta's webhook would.
    SandboxStatus {
        message_id: Uuid,
        status: MessageStatus,
    },
    /// Ask the Cloud API how a sender is doing.
    RefreshSender { sender_id: Uuid },
    /// End a conversation that has been silent for its sender's timeout.
    EndIfInactive { conversation_id: Uuid },
    /// POST one outgoing webhook delivery.
    DeliverWebhook { delivery_id: Uuid },
    /// Answer a conversation's unanswered customer messages with the sender's assistant.
    AutoReply { conversation_id: Uuid },
    /// Extract an ended conversation's variables with its assistant, then announce the end.
    EvaluateConversation { conversation_id: Uuid },
    /// The evaluation took too long: announce the end with what is known.
    EvaluationDeadline { conversation_id: Uuid },
    /// Send the next part of a campaign.
    DispatchCampaign(DispatchCampaign),
}

/// The job that sends the next part of a campaign (`campaigns::dispatch`); `token` must still
/// be the campaign's dispatch token, so a superseded job does nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchCampaign {
    pub campaign_id: Uuid,
    pub token: Uuid,
}

/// A job of the flow queue (`flows::engine`): it carries a run id, never the run's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FlowJob {
    /// Start or continue a run; a token marks a scheduled wake-up.
    Run { run_id: Uuid, token: Option<Uuid> },
    /// The contact answered a run waiting for a reply.
    Reply {
        run_id: Uuid,
        reply: serde_json::Value,
    },
}

/// A job's kind, the label its metrics carry (never its ids: they would explode the series).
pub trait JobKind {
    fn kind(&self) -> &'static str;
}

impl JobKind for SystemJob {
    fn kind(&self) -> &'static str {
        match self {
            SystemJob::SandboxStatus { .. } => "sandbox_status",
            SystemJob::RefreshSender { .. } => "refresh_sender",
            SystemJob::EndIfInactive { .. } => "end_if_inactive",
            SystemJob::DeliverWebhook { .. } => "deliver_webhook",
            SystemJob::AutoReply { .. } => "auto_reply",
            SystemJob::EvaluateConversation { .. } => "evaluate_conversation",
            SystemJob::EvaluationDeadline { .. } => "evaluation_deadline",
            SystemJob::DispatchCampaign(_) => "dispatch_campaign",
        }
    }
}

impl JobKind for FlowJob {
    fn kind(&self) -> &'static str {
        match self {
            FlowJob::Run { .. } => "flow_run",
            FlowJob::Reply { .. } => "flow_reply",
        }
    }
}

/// How long the sandbox takes to report SENT and DELIVERED after accepting a message.
pub const SANDBOX_SENT_AFTER: Duration = Duration::from_secs(1);
pub const SANDBOX_DELIVERED_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub enum Queue<J> {
    Sqlite(SqliteQueue<J>),
    Redis(RedisStorage<J>),
}

/// A queue in the SQLite database, and the bell its pushes ring for this process's worker.
#[derive(Clone)]
pub struct SqliteQueue<J> {
    pub storage: SqliteStorage<J>,
    /// Rung by every push from this process: its worker looks for jobs at once instead of at
    /// its next poll (`worker::POLL_INTERVAL`), which still finds what other processes push.
    pub pushed: Arc<Notify>,
}

impl<J> SqliteQueue<J> {
    pub fn new(storage: SqliteStorage<J>) -> Self {
        Self {
            storage,
            pushed: Arc::new(Notify::new()),
        }
    }
}

impl<J> std::fmt::Debug for Queue<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Queue::Sqlite(_) => "Queue::Sqlite",
            Queue::Redis(_) => "Queue::Redis",
        })
    }
}

fn queue_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("cannot enqueue a job: {e}"))
}

impl<J> Queue<J>
where
    J: JobKind + Clone + Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static,
{
    /// Enqueues `job` to run now, or after `delay`.
    pub async fn push(&self, job: J, delay: Option<Duration>) -> Result<()> {
        metrics::counter!("waflow_jobs_queued_total", "kind" => job.kind()).increment(1);
        let builder = match delay {
            Some(delay) => TaskBuilder::new(job).run_after(delay),
            None => TaskBuilder::new(job),
        };
        match self {
            Queue::Sqlite(queue) => {
                let pushed = queue.storage.clone().push_task(builder.build()).await;
                // A delayed job wakes the worker for nothing, once: cheaper than telling.
                queue.pushed.notify_one();
                pushed.map_err(queue_error)
            }
            Queue::Redis(storage) => {
                // Redis keeps no due time once a job is ready to run; the id carries it, so
                // the queue's oldest job can be aged (`stats`).
                let due = std::time::SystemTime::now() + delay.unwrap_or_default();
                let id = ulid::Ulid::from_datetime(due);
                let task = builder.task_id(TaskId::from_ulid(id)).build();
                let pushed = storage.clone().push_task(task.clone()).await;
                match pushed {
                    // After Redis restarted, the connection learns it on its first command
                    // and reconnects: the same push (same id, so never twice) goes through.
                    Err(error) if is_connection_lost(&error) => {
                        tracing::warn!(%error, "Redis connection lost; pushing the job again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        storage.clone().push_task(task).await.map_err(queue_error)
                    }
                    other => other.map_err(queue_error),
                }
            }
        }
    }
}

/// The connection to Redis went away under the push (as opposed to Redis refusing it).
fn is_connection_lost(error: &TaskSinkError<apalis_redis::Error>) -> bool {
    matches!(
        error,
        TaskSinkError::PushError(apalis_redis::Error::Database(e)) if e.is_connection_dropped()
    )
}

impl<J> Queue<J> {
    /// Deletes the finished jobs of a SQLite queue (`queue`: `system`, `flows`). apalis-sqlite
    /// keeps them, and each batch of acknowledgements reads every job its worker ever took
    /// (its `ack.sql` finds them by `lock_by`, then parses its JSON batch once per row): the
    /// embedded profile measured a quarter of its CPU there, more with every job. A job carries
    /// only ids (the state is in its rows), so a finished one holds nothing worth keeping;
    /// failed ones stay for inspection. Redis queues keep nothing to delete. Answers how many.
    pub async fn forget_done(&self, queue: &str) -> Result<u64> {
        match self {
            Queue::Sqlite(sqlite) => {
                let deleted =
                    sqlx::query("DELETE FROM Jobs WHERE job_type = ?1 AND status = 'Done'")
                        .bind(sqlite_queue_name(queue))
                        .execute(sqlite.storage.pool())
                        .await
                        .map_err(|e| {
                            Error::Internal(format!("cannot delete finished jobs: {e}"))
                        })?;
                Ok(deleted.rows_affected())
            }
            Queue::Redis(_) => Ok(0),
        }
    }
}

/// The name a queue (`system`, `flows`) has in the SQLite `Jobs` table, its `job_type`.
pub fn sqlite_queue_name(queue: &str) -> String {
    format!("waflow-{queue}")
}

/// The queues of this deployment.
#[derive(Clone, Debug)]
pub struct JobQueue {
    pub system: Queue<SystemJob>,
    /// Flow runs, on a queue of their own so a burst of runs never delays system work.
    pub flows: Queue<FlowJob>,
}

impl JobQueue {
    /// Deletes the finished jobs of both queues (`Queue::forget_done`); the worker's SQLite
    /// upkeep calls it every second.
    pub async fn forget_done(&self) -> Result<u64> {
        Ok(self.system.forget_done("system").await? + self.flows.forget_done("flows").await?)
    }

    /// After a provider accepted a message: the sandbox reports its progress by itself.
    pub async fn message_accepted(
        &self,
        sender: &sender::Model,
        message: &message::Model,
    ) -> Result<()> {
        if sender.provider == SenderProvider::Sandbox {
            for (status, delay) in [
                (MessageStatus::Sent, SANDBOX_SENT_AFTER),
                (MessageStatus::Delivered, SANDBOX_DELIVERED_AFTER),
            ] {
                self.system
                    .push(
                        SystemJob::SandboxStatus {
                            message_id: message.id,
                            status,
                        },
                        Some(delay),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// A message was added to a conversation: check for silence once the timeout has passed
    /// (a second late, so the deadline is surely behind). Jobs armed by earlier messages find the
    /// conversation still active and do nothing.
    pub async fn arm_inactivity(&self, conversation_id: Uuid, timeout_seconds: i32) -> Result<()> {
        let delay = Duration::from_secs(u64::try_from(timeout_seconds).unwrap_or(0) + 1);
        self.system
            .push(SystemJob::EndIfInactive { conversation_id }, Some(delay))
            .await
    }

    /// Runs `job` after `delay`, rounded up to whole seconds (the queues' resolution), or now.
    pub async fn system_after(&self, job: SystemJob, delay: Duration) -> Result<()> {
        let delay = (!delay.is_zero())
            .then(|| Duration::from_secs(delay.as_millis().div_ceil(1000) as u64));
        self.system.push(job, delay).await
    }

    /// A sender's credentials are new or changed: check them with the provider soon.
    pub async fn refresh_sender(&self, sender: &sender::Model) -> Result<()> {
        if sender.provider == SenderProvider::CloudApi {
            self.system
                .push(
                    SystemJob::RefreshSender {
                        sender_id: sender.id,
                    },
                    None,
                )
                .await?;
        }
        Ok(())
    }
}
