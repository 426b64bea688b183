//! The workers: they take jobs from the queues and run them, and a ticker starts periodic work.
//! `waflow serve` runs them beside the API (unless `--no-worker`); `waflow worker` runs only them.

use std::{future::Future, time::Duration};

use apalis::prelude::{
    AbortError, BackendExt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt,
    WorkerContext, WorkerError,
};
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, sea_query::OnConflict};
use uuid::Uuid;
use waflow_entities::schedule_tick;

use crate::{
    Services,
    error::Error,
    flows::{
        FlowJob,
        engine::{self, Resume},
    },
    poll_timer::EveryInterval,
    queue::{JobKind, Queue, SystemJob},
};

/// How often an idle worker looks for due jobs in SQLite. Each look is a query on the one
/// database file the API also writes to, so it stays coarse: a job pushed by this process wakes
/// the worker at once (`SqliteQueue::pushed`); the poll finds delayed jobs and other processes'.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The same for Redis, where a look is one script call: a run started by a webhook waits for
/// the next look, so this bounds its latency (`bench flows` measured a p99 of 450-770 ms at
/// 250 ms); 20 looks a second per queue and worker cost Redis nothing it notices.
pub const REDIS_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Jobs one worker process runs at once.
pub const CONCURRENCY: usize = 16;
/// Cloud API senders are checked this often.
pub const SENDER_REFRESH_PERIOD: i64 = 300;
/// Old runs are pruned once per this many seconds, by one process.
const PRUNE_PERIOD: i64 = 3600;
/// How long a failed worker waits before it starts again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);
/// How often the ticker looks for due work (flow schedules may fire every second).
const TICKER_INTERVAL: Duration = Duration::from_secs(1);

/// Runs one job. Database trouble is transient (the queue tries again); anything else is final.
async fn run_system_job(job: SystemJob, services: Data<Services>) -> Result<(), BoxDynError> {
    let span = job_span(&job);
    tracing::Instrument::instrument(system_job(job, services), span).await
}

/// A span naming the job and what it works on, so its log lines can be found by run,
/// conversation or campaign id.
fn job_span(job: &SystemJob) -> tracing::Span {
    let kind = job.kind();
    match job {
        SystemJob::EndIfInactive { conversation_id }
        | SystemJob::AutoReply { conversation_id }
        | SystemJob::EvaluateConversation { conversation_id }
        | SystemJob::EvaluationDeadline { conversation_id } => {
            tracing::info_span!("job", kind, %conversation_id)
        }
        SystemJob::SandboxStatus { message_id, .. } => {
            tracing::info_span!("job", kind, %message_id)
        }
        SystemJob::RefreshSender { sender_id } => tracing::info_span!("job", kind, %sender_id),
        SystemJob::DeliverWebhook { delivery_id } => tracing::info_span!("job", kind, %delivery_id),
        SystemJob::DispatchCampaign(d) => {
            tracing::info_span!("job", kind, campaign_id = %d.campaign_id)
        }
    }
}

async fn system_job(job: SystemJob, services: Data<Services>) -> Result<(), BoxDynError> {
    let _running = Running::start(job.kind());
    let outcome = match &job {
        SystemJob::SandboxStatus { message_id, status } => {
            services
                .messaging()
                .advance_sandbox_message(*message_id, *status)
                .await
        }
        SystemJob::DeliverWebhook { delivery_id } => {
            services.webhooks().attempt(*delivery_id).await
        }
        SystemJob::EndIfInactive { conversation_id } => {
            services.messaging().end_if_inactive(*conversation_id).await
        }
        SystemJob::AutoReply { conversation_id } => {
            services.ai_replies().auto_reply(*conversation_id).await
        }
        SystemJob::EvaluateConversation { conversation_id } => {
            services.evaluation().evaluate(*conversation_id).await
        }
        SystemJob::EvaluationDeadline { conversation_id } => {
            services.evaluation().deadline(*conversation_id).await
        }
        SystemJob::DispatchCampaign(dispatch) => services.campaigns().dispatch(dispatch).await,
        SystemJob::RefreshSender { sender_id } => services
            .senders()
            .refresh_status(*sender_id)
            .await
            .map(|_| ()),
    };
    outcome_of(&job, outcome)
}

/// Registers a worker for `queue` on `monitor`, whichever storage holds the queue.
macro_rules! register {
    ($monitor:expr, $name:expr, $queue:expr, $services:expr, $handler:expr) => {{
        let name = $name;
        let services = $services.clone();
        match $queue {
            Queue::Sqlite(queue) => $monitor.register(move |restarts| {
                WorkerBuilder::new(format!("{name}-{restarts}"))
                    .backend(queue.storage.clone().poll_with_strategy(
                        EveryInterval::new(POLL_INTERVAL).or_when(queue.pushed.clone()),
                    ))
                    .data(services.clone())
                    .concurrency(CONCURRENCY)
                    .build($handler)
            }),
            Queue::Redis(storage) => $monitor.register(move |restarts| {
                WorkerBuilder::new(format!("{name}-{restarts}"))
                    .backend(
                        storage
                            .clone()
                            .poll_with_strategy(EveryInterval::new(REDIS_POLL_INTERVAL)),
                    )
                    .data(services.clone())
                    .concurrency(CONCURRENCY)
                    .build($handler)
            }),
        }
    }};
}

/// Runs one step of a flow run's life. A run's own failures are recorded on the run; only
/// trouble reaching the database makes the queue try the job again.
async fn run_flow_job(job: FlowJob, services: Data<Services>) -> Result<(), BoxDynError> {
    let run_id = match &job {
        FlowJob::Run { run_id, .. } | FlowJob::Reply { run_id, .. } => *run_id,
    };
    let span = tracing::info_span!("job", kind = job.kind(), %run_id);
    tracing::Instrument::instrument(flow_job(job, services), span).await
}

async fn flow_job(job: FlowJob, services: Data<Services>) -> Result<(), BoxDynError> {
    let _running = Running::start(job.kind());
    let outcome = match job.clone() {
        FlowJob::Run { run_id, token } => {
            engine::execute(&services, run_id, Resume::Token(token)).await
        }
        FlowJob::Reply { run_id, reply } => {
            engine::execute(&services, run_id, Resume::Reply(reply)).await
        }
    };
    outcome_of(&job, outcome)
}

fn outcome_of(
    job: &(impl std::fmt::Debug + JobKind),
    outcome: crate::Result<()>,
) -> Result<(), BoxDynError> {
    let finished = |result: &'static str| {
        metrics::counter!("waflow_jobs_finished_total", "kind" => job.kind(), "result" => result)
            .increment(1);
        tracing::debug!(result, "job finished");
    };
    match outcome {
        Ok(()) | Err(Error::NotFound(_)) => {
            finished("succeeded");
            Ok(())
        }
        Err(error @ Error::Database(_)) => {
            finished("retried");
            tracing::warn!(?job, %error, "job failed; it will be retried");
            Err(error.into())
        }
        Err(error) => {
            finished("failed");
            tracing::error!(?job, %error, "job failed for good");
            Err(AbortError::new(error).into())
        }
    }
}

/// One job running in this process, counted in `waflow_jobs_running` until it ends (or its
/// future is dropped at shutdown).
struct Running(&'static str);

impl Running {
    fn start(kind: &'static str) -> Self {
        metrics::gauge!("waflow_jobs_running", "kind" => kind).increment(1.0);
        tracing::debug!("job started");
        Running(kind)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        metrics::gauge!("waflow_jobs_running", "kind" => self.0).decrement(1.0);
    }
}

/// A worker whose queue failed (Redis restarted, the SQLite file locked too long) is started
/// again, under a new name, rather than left dead while the process looks healthy. The pause
/// keeps an outage from becoming a busy loop; `block_in_place` keeps it off the other tasks
/// (a single-threaded runtime, as in tests, just sleeps).
///
/// A closed pool is not an outage but this process closing its database: the worker stays
/// stopped. Restarted, it failed again at once, forever, and apalis restarts within one poll:
/// on a single-threaded runtime no other task ran again (`webhooks::a_database_outage_asks_meta_to_retry`
/// hung in one run of three).
fn restart_after_a_pause(
    db: &sea_orm::DatabaseConnection,
    worker: &WorkerContext,
    error: &WorkerError,
) -> bool {
    if pool_closed(db) {
        tracing::info!(worker = worker.name(), %error, "the database pool is closed; worker stopped");
        return false;
    }
    tracing::warn!(worker = worker.name(), %error, "worker stopped; starting it again in 1 s");
    let pause = || std::thread::sleep(RESTART_PAUSE);
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(pause),
        _ => pause(),
    }
    true
}

/// Whether this process closed its database pool (at shutdown, or a test of an outage).
fn pool_closed(db: &sea_orm::DatabaseConnection) -> bool {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => db.get_postgres_connection_pool().is_closed(),
        sea_orm::DbBackend::Sqlite => db.get_sqlite_connection_pool().is_closed(),
        _ => false,
    }
}

/// Runs the workers until `shutdown` completes, then lets running jobs finish (bounded).
pub async fn run(
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Names must be unique across restarts too: a queue refuses a name it saw recently.
    let name = |queue: &str| {
        format!(
            "waflow-{queue}-{}-{}",
            std::process::id(),
            Uuid::now_v7().simple()
        )
    };
    let db = services.db.clone();
    let monitor = register!(
        Monitor::new()
            .should_restart(move |worker, error| restart_after_a_pause(&db, worker, error)),
        name("system"),
        services.jobs.system.clone(),
        services,
        run_system_job
    );
    let monitor = register!(
        monitor,
        name("flows"),
        services.jobs.flows.clone(),
        services,
        run_flow_job
    );
    let (stop_ticker, ticker_stopped) = tokio::sync::watch::channel(false);
    let upkeep = tokio::spawn(keep_sqlite_lean(services.clone(), ticker_stopped.clone()));
    let ticker = tokio::spawn(ticker(services, ticker_stopped));
    let result = monitor
        .shutdown_timeout(Duration::from_secs(20))
        .run_with_signal(async move {
            shutdown.await;
            let _ = stop_ticker.send(true);
            Ok(())
        })
        .await;
    let _ = ticker.await;
    let _ = upkeep.await;
    result.map_err(|e| std::io::Error::other(e.to_string()))
}

/// Starts periodic work once per tick across all processes.
async fn ticker(services: Services, mut stopped: tokio::sync::watch::Receiver<bool>) {
    // The ticker wakes every second for flow schedules; the sender refresh tick changes every
    // few minutes, so it is claimed once per new tick, not once per wake-up.
    let mut claimed_refresh = None;
    let mut claimed_prune = None;
    let mut claimed_reconcile = None;
    loop {
        let tick = Utc::now().timestamp() / SENDER_REFRESH_PERIOD;
        if claimed_refresh != Some(tick) {
            match claim_tick(&services, "refresh-senders", tick).await {
                Ok(won) => {
                    claimed_refresh = Some(tick);
                    if won && let Err(error) = enqueue_sender_refreshes(&services).await {
                        tracing::warn!(%error, "could not schedule the sender status refresh");
                    }
                }
                Err(error) => tracing::warn!(%error, "could not claim a schedule tick"),
            }
        }
        if let Some(retention) = services.run_retention {
            let hour = Utc::now().timestamp() / PRUNE_PERIOD;
            if claimed_prune != Some(hour) {
                claimed_prune = Some(hour);
                if let Ok(true) = claim_tick(&services, "prune-runs", hour).await {
                    tokio::spawn(prune_runs(services.clone(), retention));
                }
            }
        }
        let every = services.runs.reconcile_every.as_secs().max(1) as i64;
        let tick = Utc::now().timestamp() / every;
        if claimed_reconcile != Some(tick) {
            claimed_reconcile = Some(tick);
            if let Ok(true) = claim_tick(&services, "reconcile-runs", tick).await {
                tokio::spawn(reconcile_runs(services.clone()));
            }
        }
        if let Err(error) = services.flows().fire_due_schedules().await {
            tracing::warn!(%error, "could not start the scheduled flows");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICKER_INTERVAL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// The embedded database's upkeep, every second: finished jobs deleted (`JobQueue::forget_done`)
/// and the WAL truncated past `db::WAL_LIMIT` (`Durability::keep_wal_short`). A task of its own,
/// not the ticker's: a truncation may wait seconds for SQLite's locks, and the flow schedules
/// must not wait with it. Nothing to do on PostgreSQL and Redis.
async fn keep_sqlite_lean(services: Services, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(error) = services.jobs.forget_done().await {
            tracing::warn!(%error, "could not delete finished jobs");
        }
        if let Err(error) = services
            .durability
            .keep_wal_short(&services.db, crate::db::WAL_LIMIT)
            .await
        {
            tracing::warn!(%error, "could not checkpoint the SQLite WAL");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICKER_INTERVAL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Deletes finished runs older than `retention`, in the background of one process per period.
async fn prune_runs(services: Services, retention: Duration) {
    let cutoff =
        Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    match services.flows().prune_finished_runs(cutoff).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, %cutoff, "pruned finished flow runs"),
        Err(error) => tracing::warn!(%error, "could not prune finished flow runs"),
    }
}

/// Wakes the runs whose jobs were lost (see `flows::reconcile`), in the background of one
/// process per tick.
async fn reconcile_runs(services: Services) {
    match services.flows().reconcile_runs().await {
        Ok(woken) if !woken.is_empty() => {
            tracing::warn!(runs = woken.len(), "the reconciler woke flow runs");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not look for lost flow runs"),
    }
}

async fn enqueue_sender_refreshes(services: &Services) -> crate::Result<()> {
    for sender_id in services.senders().cloud_api_sender_ids().await? {
        services
            .jobs
            .system
            .push(SystemJob::RefreshSender { sender_id }, None)
            .await?;
    }
    Ok(())
}

/// How many past ticks of a periodic task are kept; older claims are deleted by the winner of
/// a new one, so the table stays small however often a task ticks.
const TICKS_KEPT: i64 = 10;

/// Claims `tick` of the periodic task `name`: true for exactly one caller across all processes.
pub async fn claim_tick(services: &Services, name: &str, tick: i64) -> crate::Result<bool> {
    let inserted = schedule_tick::Entity::insert(schedule_tick::ActiveModel {
        name: Set(name.to_owned()),
        tick: Set(tick),
        claimed_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([schedule_tick::Column::Name, schedule_tick::Column::Tick])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&services.db)
    .await?;
    if inserted == 1 {
        schedule_tick::Entity::delete_many()
            .filter(schedule_tick::Column::Name.eq(name))
            .filter(schedule_tick::Column::Tick.lt(tick - TICKS_KEPT))
            .exec(&services.db)
            .await?;
    }
    Ok(inserted == 1)
}
