//! The context every service works in: `Services` (database, secrets, egress, rate limiter,
//! queues, event bus, settings) and its two assemblies, embedded and production. The domain
//! services hang off it (`services.senders()`, `services.flows()`, …), each in its own module,
//! each taking the caller's workspace id and never reading or writing another workspace's rows:
//! a foreign id is indistinguishable from a missing one.
//!
//! This is the bottom of the stack: it names no domain. What happens after an event is emitted
//! is decided by the reactions the top of the stack registers (`crate::reactions`).

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use sea_orm::{DatabaseConnection, sea_query::SelectStatement};
use uuid::Uuid;

use crate::{
    crypto::SecretBox,
    error::{Error, Result},
    events::{Event, EventBus},
    queue::{JobQueue, Queue, SqliteQueue},
    rate_limit::RateLimiter,
};

/// What every service needs: the database, the key for secrets at rest, an HTTP client for
/// providers, the shared rate limiter and the job queues. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Services {
    pub db: DatabaseConnection,
    pub secrets: SecretBox,
    /// The client for every request to a URL a workspace gave, and the policy it enforces.
    pub egress: crate::egress::Egress,
    pub rate_limiter: RateLimiter,
    pub jobs: JobQueue,
    pub events: EventBus,
    /// Waits between the attempts of a failed webhook delivery.
    pub webhook_backoff: Vec<Duration>,
    /// How long a conversation's end waits for its evaluation before it is announced anyway.
    pub evaluation_timeout: Duration,
    /// The production profile's Redis, for readiness checks; `None` when embedded.
    pub redis: Option<redis::aio::ConnectionManager>,
    /// Finished flow runs older than this are pruned in the background; `None` keeps them.
    pub run_retention: Option<Duration>,
    /// How flow runs are held and, when their jobs were lost, found again.
    pub runs: RunSettings,
    /// Inbound messages older than this are replays: recorded, running nothing.
    pub inbound_max_age: Duration,
    /// The flow queue's sampled backlog, past whose limit flow webhooks start no run.
    pub run_backlog: crate::queue_stats::RunBacklog,
    /// Points where a test stops a job dead; none outside tests.
    pub crash_points: crate::crash_points::CrashPoints,
    /// Where workspaces' templates and expressions run. None until the binary (or a test)
    /// sets one: every render fails until then.
    pub sandbox: crate::sandbox::Sandbox,
    /// What follows an emitted event, in order (`crate::reactions`).
    pub reactions: Reactions,
    /// Rows that never change (published flow versions), read once per process.
    pub memo: crate::memo::Memo,
    /// Each workspace's webhook endpoints and trigger index, by its `routes_version`.
    pub routes: crate::event_routes::RoutesCache,
    /// The Cloud API senders and their app secrets, by the senders' shared version.
    pub sender_directory: crate::sender_directory::SenderDirectory,
    /// When commits are on disk: wait for it before anything a commit announces leaves the
    /// process.
    pub durability: crate::db::Durability,
}

/// One consequence of an event: the reactions module (`crate::reactions`) defines them above
/// every domain, so that a lower layer emits an event without naming who reacts to it.
pub trait Reaction: Send + Sync {
    /// What the reaction does, for logs and `Debug`.
    fn name(&self) -> &'static str;
    /// Acts on one committed event; logs its own failures (an event is never taken back).
    fn react<'a>(
        &'a self,
        services: &'a Services,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
    /// For the `MessageReceived` event of an inbound message with these fields: a query for
    /// the rows this reaction would act on. The message's write transaction asks whether it
    /// finds any, as one `EXISTS` in a statement it sends anyway; when it finds none,
    /// `Services::emit` skips this reaction for that event (`Event::idle_reactions`), so a
    /// reaction that must read before it acts pays its read only when there is something to do.
    /// The answer is as of the message's commit: a row that appears after it was not there
    /// when the message came. `None`, the default: the reaction always runs.
    fn probe(&self, _message: &ProbedMessage<'_>) -> Option<SelectStatement> {
        None
    }
}

/// The fields of an inbound message's `MessageReceived` event that a reaction's probe may use,
/// known before its write transaction commits (`Reaction::probe`).
#[derive(Debug, Clone, Copy)]
pub struct ProbedMessage<'a> {
    pub workspace_id: Uuid,
    pub sender_id: Uuid,
    /// The contact's number (E.164), as the event will carry it.
    pub customer_phone: Option<&'a str>,
    /// The contact's business-scoped user id, as the event will carry it.
    pub customer_user_id: Option<&'a str>,
}

/// The reactions registered at assembly, run in this order by `Services::emit`. Cheap to clone.
#[derive(Clone, Default)]
pub struct Reactions(Arc<[Arc<dyn Reaction>]>);

impl Reactions {
    pub fn new(reactions: Vec<Arc<dyn Reaction>>) -> Self {
        Self(reactions.into())
    }
}

impl std::fmt::Debug for Reactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|r| r.name()))
            .finish()
    }
}

/// How flow runs are held by workers and found again by the reconciler (`flows::reconcile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSettings {
    /// How long a worker's hold on a run lasts without renewal (renewed three times per
    /// length while it works): a dead worker's runs wait this long at most.
    pub lease: Duration,
    /// How often one process looks for runs whose jobs were lost.
    pub reconcile_every: Duration,
    /// How long past its time a run may wait for its job, beyond the queue's own backlog,
    /// before the job counts as lost: longer than a worker takes to notice a dead one (apalis
    /// re-enqueues after 15 s) and a dead holder's lease to expire.
    pub reconcile_grace: Duration,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            reconcile_every: Duration::from_secs(10),
            reconcile_grace: Duration::from_secs(60),
        }
    }
}

/// Where the production profile keeps its queue and shared state.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Namespaces every key, so deployments (or parallel tests) can share one Redis.
    pub prefix: String,
}

/// Waits before the retries of a failed webhook delivery: six attempts over almost two hours.
pub const DEFAULT_WEBHOOK_BACKOFF: [u64; 5] = [60, 300, 900, 1800, 3600];
/// How long a conversation's end waits for its evaluation unless configured otherwise.
pub const DEFAULT_EVALUATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How old a delivered inbound message may be before it is taken for a replay (Meta redelivers
/// for up to seven days).
pub const DEFAULT_INBOUND_MAX_AGE: Duration = Duration::from_secs(8 * 24 * 3600);

/// apalis-sqlite's worker can miss the wake-up after a fetch under load and then sleeps until
/// its next heartbeat (seen in our tests with the default 30 s): a short heartbeat bounds that
/// delay, and re-enqueues a crashed worker's jobs after three missed beats.
const SQLITE_HEARTBEAT: Duration = Duration::from_secs(2);
/// A crashed worker's jobs go back to the queue after this many missed heartbeats.
const REDIS_HEARTBEAT: Duration = Duration::from_secs(5);
const REDIS_MISSED_HEARTBEATS: usize = 3;
/// Jobs a worker fetches from Redis per poll. Its tasks wait in line for one of its
/// `worker::CONCURRENCY` slots, so a small batch lets a burst spread over every worker and leaves
/// few jobs stranded behind a killed one (apalis-redis' default is 10).
const REDIS_BATCH: usize = 2;

impl Services {
    /// The embedded profile's context: jobs in the (SQLite) database itself, limits in this
    /// process; no reactions yet (`crate::assembly` adds them).
    pub async fn embedded_context(db: DatabaseConnection, secrets: SecretBox) -> Result<Self> {
        if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
            return Err(Error::Internal(
                "the embedded profile keeps its job queue in SQLite; PostgreSQL needs REDIS_URL"
                    .into(),
            ));
        }
        let pool = db.get_sqlite_connection_pool().clone();
        // apalis' own setup would also switch `synchronous` off on one of our connections: only
        // its tables are wanted (`db::connect` sets WAL and `synchronous`).
        apalis_sqlite::SqliteStorage::<()>::migrations()
            .run(&pool)
            .await
            .map_err(|e| Error::Internal(format!("cannot set up the job queue: {e}")))?;
        let sqlite_queue = |name: &str| {
            apalis_sqlite::Config::default()
                .queue(name)
                .heartbeat_interval(SQLITE_HEARTBEAT)
                .missed_heartbeats(3)
        };
        let jobs = JobQueue {
            system: Queue::Sqlite(SqliteQueue::new(
                apalis_sqlite::SqliteStorage::new(&pool)
                    .with_config(sqlite_queue(&crate::queue::sqlite_queue_name("system"))),
            )),
            flows: Queue::Sqlite(SqliteQueue::new(
                apalis_sqlite::SqliteStorage::new(&pool)
                    .with_config(sqlite_queue(&crate::queue::sqlite_queue_name("flows"))),
            )),
        };
        let events = EventBus::in_process();
        let durability = crate::db::Durability::of(&db).await?;
        Ok(Self::assemble(
            db,
            secrets,
            RateLimiter::in_process(),
            jobs,
            events,
            durability,
        ))
    }

    /// The production profile's context: jobs and rate limits in Redis, shared by every
    /// process; no reactions yet (`crate::assembly` adds them).
    pub async fn production_context(
        db: DatabaseConnection,
        secrets: SecretBox,
        redis: &RedisSettings,
    ) -> Result<Self> {
        let unreachable =
            |e: redis::RedisError| Error::Internal(format!("cannot reach Redis at REDIS_URL: {e}"));
        let client = redis::Client::open(redis.url.as_str()).map_err(unreachable)?;
        let manager = redis::aio::ConnectionManager::new(client.clone())
            .await
            .map_err(unreachable)?;
        let queue_connection = apalis_redis::connect(redis.url.as_str())
            .await
            .map_err(unreachable)?;
        let redis_queue = |name: &str| {
            apalis_redis::Config::default()
                .queue(format!("{}{name}", redis.prefix))
                .batch_size(REDIS_BATCH)
                .heartbeat_interval(REDIS_HEARTBEAT)
                .missed_heartbeats(REDIS_MISSED_HEARTBEATS)
        };
        let system = apalis_redis::RedisStorage::new(queue_connection.clone())
            .with_config(redis_queue("system"));
        let flows =
            apalis_redis::RedisStorage::new(queue_connection).with_config(redis_queue("flows"));
        let events = EventBus::redis(client, manager.clone(), format!("{}events", redis.prefix))
            .await
            .map_err(unreachable)?;
        let limiter = RateLimiter::redis(manager.clone(), redis.prefix.clone());
        let jobs = JobQueue {
            system: Queue::Redis(system),
            flows: Queue::Redis(flows),
        };
        let durability = crate::db::Durability::of(&db).await?;
        let mut services = Self::assemble(db, secrets, limiter, jobs, events, durability);
        services.redis = Some(manager);
        Ok(services)
    }

    fn assemble(
        db: DatabaseConnection,
        secrets: SecretBox,
        rate_limiter: RateLimiter,
        jobs: JobQueue,
        events: EventBus,
        durability: crate::db::Durability,
    ) -> Self {
        let run_backlog = crate::queue_stats::RunBacklog::new(
            jobs.flows.clone(),
            Some(crate::queue_stats::DEFAULT_MAX_RUN_BACKLOG),
        );
        Self {
            db,
            secrets,
            egress: crate::egress::Egress::new(),
            rate_limiter,
            jobs,
            events,
            webhook_backoff: DEFAULT_WEBHOOK_BACKOFF
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            evaluation_timeout: DEFAULT_EVALUATION_TIMEOUT,
            redis: None,
            run_retention: None,
            runs: RunSettings::default(),
            inbound_max_age: DEFAULT_INBOUND_MAX_AGE,
            run_backlog,
            crash_points: Default::default(),
            sandbox: crate::sandbox::Sandbox::missing(),
            reactions: Reactions::default(),
            memo: Default::default(),
            routes: Default::default(),
            sender_directory: Default::default(),
            durability,
        }
    }

    /// Tells everyone who listens that something happened: runs every reaction registered at
    /// assembly (`crate::reactions`), in their order. Called after the change is committed; a
    /// reaction that fails logs its failure and never undoes the change.
    pub async fn emit(&self, event: Event) {
        for reaction in self.reactions.0.iter() {
            if !event.idle_reactions.contains(&reaction.name()) {
                reaction.react(self, &event).await;
            }
        }
    }

    /// The probes of the registered reactions for an inbound message, by reaction name
    /// (`Reaction::probe`).
    pub fn probes(&self, message: &ProbedMessage<'_>) -> Vec<(&'static str, SelectStatement)> {
        self.reactions
            .0
            .iter()
            .filter_map(|r| Some((r.name(), r.probe(message)?)))
            .collect()
    }

    /// What routes `event`: its workspace's endpoints and triggers as of the event's
    /// `routes_version` (read now when the event has none).
    pub async fn routes_of(
        &self,
        event: &Event,
    ) -> crate::error::Result<Arc<crate::event_routes::EventRoutes>> {
        self.routes
            .get(&self.db, event.workspace_id, event.routes_version)
            .await
    }

    /// These services with `reactions` run on every emitted event (`crate::assembly` registers
    /// them once; a context without them emits into the void, which only a unit test wants).
    pub fn with_reactions(mut self, reactions: Reactions) -> Self {
        self.reactions = reactions;
        self
    }
}

/// Fetches one row of `entity` by id within `workspace_id`, or NOT_FOUND naming `what`.
macro_rules! find_in_workspace {
    ($db:expr, $entity:ident, $workspace_id:expr, $id:expr, $what:expr) => {{
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        waflow_entities::$entity::Entity::find_by_id($id)
            .filter(waflow_entities::$entity::Column::WorkspaceId.eq($workspace_id))
            .one($db)
            .await?
            .ok_or($crate::Error::NotFound($what))
    }};
}
pub(crate) use find_in_workspace;
