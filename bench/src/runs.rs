//! `bench runs`: runs completed per second, not requests accepted (issue 20's workload). A flow
//! with a webhook trigger and one `set_variables` step; `clients` closed-loop clients POST to
//! its hook for `duration` seconds, each request a new customer (or, with `--same-customer`,
//! one customer, whose runs the flow's concurrency key serializes). One `waflow serve` process
//! (API and workers) in the production profile, or with `--embedded` in the embedded one.
//!
//! Accepted: 202 answers per second and their latency. Completed: runs finished (`flow_run`
//! rows SUCCEEDED or FAILED) per second, from the first request to the last run's
//! `finished_at`, and a run's latency from its `created_at` (the hook accepted it) to its
//! `finished_at`, both read from the database when the backlog has drained.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Args;
use serde_json::json;

use crate::{
    Global, Result, fixture, raw,
    setup::{Api, Deployment},
    stats,
};

#[derive(Args, Clone)]
pub struct Opts {
    /// Concurrent clients, each posting its next request when the last is answered.
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Every request from one customer: the concurrency key runs them one at a time.
    #[arg(long)]
    pub same_customer: bool,
    /// Most seconds to wait for the backlog to drain after the load.
    #[arg(long, default_value_t = 600)]
    pub drain: u64,
    /// The embedded profile (SQLite, no Redis) instead of the production one.
    #[arg(long)]
    pub embedded: bool,
    /// Open loop: this many requests per second, each sent on time whatever the answers before
    /// it (the latency target is at half the maximum rate), instead of `clients` closed-loop
    /// clients.
    #[arg(long)]
    pub rate: Option<u32>,
    /// The server's WAFLOW_MAX_RUN_BACKLOG_SECONDS: past this backlog age the hook answers 503
    /// (unset: the server's default, 60 s).
    #[arg(long)]
    pub max_run_backlog: Option<u64>,
}

pub async fn run(global: &Global, opts: &Opts) -> Result<()> {
    println!(
        "\n== runs: webhook -> set_variables, {} for {} s, {}, 1 process (serve), {} ==",
        match opts.rate {
            Some(rate) => format!("{rate} requests/s (open loop)"),
            None => format!("{} clients", opts.clients),
        },
        opts.duration,
        if opts.same_customer {
            "one customer"
        } else {
            "a new customer per request"
        },
        if opts.embedded {
            "embedded (SQLite)"
        } else {
            "production (PostgreSQL + Redis)"
        }
    );
    let mut deployment = if opts.embedded {
        Deployment::embedded(global)?
    } else {
        Deployment::new(global)?
    };
    if let Some(seconds) = opts.max_run_backlog {
        let setting = (
            "WAFLOW_MAX_RUN_BACKLOG_SECONDS".to_owned(),
            seconds.to_string(),
        );
        deployment.env.push(setting);
    }
    let base = deployment.start_api(false).await?;
    let (flow_id, secret) = live_flow(&deployment.api(0)).await?;
    let hook = format!("{base}/hooks/flows/{flow_id}");
    let api = deployment.api(0);
    let syncs_before = api.counter(WAL_SYNCS).await?;
    let before = stats::snapshot(&deployment);
    let accepted = match opts.rate {
        Some(rate) => open_loop(&hook, &secret, opts, rate).await?,
        None => closed_loop(&hook, &secret, opts).await?,
    };
    let drained = drain(&deployment, accepted.accepted(), opts.drain).await?;
    let drained_after = accepted.started.elapsed().saturating_sub(accepted.wall);
    let mut after = stats::snapshot(&deployment);
    let syncs = api.counter(WAL_SYNCS).await? - syncs_before;
    stats::settle_commits(&mut after, &deployment).await;
    if opts.embedded {
        println!(
            "  SQLite WAL fsyncs per run: {:.3} ({syncs:.0}: one flush for every commit waiting)",
            syncs / (drained.max(1) as f64)
        );
    }
    report(
        &deployment,
        opts,
        &accepted,
        (drained, drained_after),
        (&before, &after),
        global,
    )
}

/// The embedded profile's group commits (`waflow_jobs::db::Durability`).
const WAL_SYNCS: &str = "waflow_wal_syncs_total";

/// Creates, publishes and enables the flow; answers its id and webhook secret.
async fn live_flow(api: &Api) -> Result<(String, String)> {
    let definition = json!({
        "trigger": {"type": "webhook"},
        "concurrencyKey": "{{ trigger.customer }}",
        "steps": [{"id": "note", "type": "set_variables",
                   "values": {"greeting": "Hello {{ trigger.customer }}"}}]
    });
    let data = api
        .gql(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id webhookSecret } }",
            json!({"input": {"name": "Bench runs", "definition": definition}}),
        )
        .await?;
    let id = data["createFlow"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let secret = data["createFlow"]["webhookSecret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    api.gql(
        "mutation($id: ID!) { publishFlow(id: $id) { id } setFlowEnabled(id: $id, enabled: true) { enabled } }",
        json!({"id": id}),
    )
    .await?;
    Ok((id, secret))
}

/// What the clients saw.
struct Accepted {
    statuses: BTreeMap<u16, u64>,
    latencies: Vec<Duration>,
    started: Instant,
    wall: Duration,
}

impl Accepted {
    fn accepted(&self) -> u64 {
        self.statuses.get(&202).copied().unwrap_or(0)
    }
}

/// The answers to the hook's requests, shared by the tasks that send them.
#[derive(Clone, Default)]
struct Tally {
    statuses: Arc<Mutex<BTreeMap<u16, u64>>>,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

impl Tally {
    /// Posts one request for `customer` and counts its answer (status 0: no answer).
    async fn post(&self, http: &reqwest::Client, hook: &str, secret: &str, customer: String) {
        let sent = Instant::now();
        let status = http
            .post(hook)
            .bearer_auth(secret)
            .json(&json!({"customer": customer}))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        self.latencies
            .lock()
            .expect("not poisoned")
            .push(sent.elapsed());
        *self
            .statuses
            .lock()
            .expect("not poisoned")
            .entry(status)
            .or_default() += 1;
    }

    fn finish(self, started: Instant) -> Accepted {
        let statuses = self.statuses.lock().expect("not poisoned").clone();
        let latencies = std::mem::take(&mut *self.latencies.lock().expect("not poisoned"));
        Accepted {
            statuses,
            latencies,
            started,
            wall: started.elapsed(),
        }
    }
}

/// `clients` tasks, each posting its next request when the last is answered, for `duration`.
async fn closed_loop(hook: &str, secret: &str, opts: &Opts) -> Result<Accepted> {
    let http = fixture::load_client()?;
    let tally = Tally::default();
    let started = Instant::now();
    let until = started + Duration::from_secs(opts.duration);
    let mut tasks = Vec::new();
    for client in 0..opts.clients {
        let (http, hook, secret) = (http.clone(), hook.to_owned(), secret.to_owned());
        let (tally, same) = (tally.clone(), opts.same_customer);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let customer = if same {
                    "c0".to_owned()
                } else {
                    format!("c{client}-{n}")
                };
                n += 1;
                tally.post(&http, &hook, &secret, customer).await;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(tally.finish(started))
}

/// One request every `1 / rate` seconds for `duration`, each on its own task: a slow answer
/// never delays the next request (no coordinated omission).
async fn open_loop(hook: &str, secret: &str, opts: &Opts, rate: u32) -> Result<Accepted> {
    let http = fixture::load_client()?;
    let tally = Tally::default();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for n in 0..u64::from(rate) * opts.duration {
        ticks.tick().await;
        let (http, hook, secret) = (http.clone(), hook.to_owned(), secret.to_owned());
        let tally = tally.clone();
        let customer = if opts.same_customer {
            "c0".to_owned()
        } else {
            format!("c{n}")
        };
        tasks.push(tokio::spawn(async move {
            tally.post(&http, &hook, &secret, customer).await;
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(tally.finish(started))
}

/// Waits until `expected` runs have finished, or none finished for 30 s, or `drain` seconds;
/// answers how many finished.
async fn drain(deployment: &Deployment, expected: u64, drain: u64) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(drain);
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        let finished: u64 = deployment
            .db
            .scalar("SELECT count(*) FROM flow_run WHERE finished_at IS NOT NULL")?
            .parse()?;
        if finished >= expected || Instant::now() > deadline {
            return Ok(finished);
        }
        if finished != last {
            (last, last_change) = (finished, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(30) {
            return Ok(finished);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Run latencies (`created_at` → `finished_at`) in milliseconds, and the seconds from the
/// first run's creation to the last one's end.
fn run_times(deployment: &Deployment) -> Result<(Vec<Duration>, f64)> {
    let sqlite = deployment.db.is_sqlite();
    let latencies = deployment.db.scalar(if sqlite {
        "SELECT group_concat(CAST(round((julianday(finished_at) - julianday(created_at)) \
         * 86400000) AS INTEGER), ',') FROM flow_run WHERE finished_at IS NOT NULL"
    } else {
        "SELECT string_agg((extract(epoch FROM finished_at - created_at) * 1000)::bigint::text, ',') \
         FROM flow_run WHERE finished_at IS NOT NULL"
    })?;
    let latencies = latencies
        .split(',')
        .filter_map(|ms| ms.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .collect();
    let span: f64 = deployment
        .db
        .scalar(if sqlite {
            "SELECT coalesce((julianday(max(finished_at)) - julianday(min(created_at))) * 86400, 0) \
             FROM flow_run"
        } else {
            "SELECT coalesce(extract(epoch FROM max(finished_at) - min(created_at)), 0) FROM flow_run"
        })?
        .parse()?;
    Ok((latencies, span))
}

/// Hand-offs between the runs of one key, in microseconds: how long each run waited to start
/// once it could, from the later of the end of the run before it and its own creation, to its
/// start (issue 20: p99 < 10 ms for one customer).
fn hand_offs(deployment: &Deployment) -> Result<Vec<Duration>> {
    let micros = deployment.db.scalar(if deployment.db.is_sqlite() {
        "SELECT group_concat(CAST(round((julianday(started_at) - julianday(max(before, created_at))) \
         * 86400000000) AS INTEGER), ',') FROM (SELECT started_at, created_at, \
         lag(finished_at) OVER (PARTITION BY concurrency_key ORDER BY id) AS before \
         FROM flow_run WHERE finished_at IS NOT NULL) WHERE before IS NOT NULL"
    } else {
        "SELECT string_agg((extract(epoch FROM started_at - greatest(before, created_at)) \
         * 1000000)::bigint::text, ',') FROM (SELECT started_at, created_at, \
         lag(finished_at) OVER (PARTITION BY concurrency_key ORDER BY id) AS before \
         FROM flow_run WHERE finished_at IS NOT NULL) r WHERE before IS NOT NULL"
    })?;
    Ok(micros
        .split(',')
        .filter_map(|us| us.trim().parse::<i64>().ok())
        .map(|us| Duration::from_micros(us.max(0) as u64))
        .collect())
}

fn report(
    deployment: &Deployment,
    opts: &Opts,
    accepted: &Accepted,
    (finished, drained_after): (u64, Duration),
    (before, after): (&stats::Snapshot, &stats::Snapshot),
    global: &Global,
) -> Result<()> {
    let wall = accepted.wall.as_secs_f64().max(1e-9);
    let ok = accepted.accepted();
    let (run_latencies, span) = run_times(deployment)?;
    let completed_rate = finished as f64 / span.max(1e-9);
    let by_status = deployment.db.scalar(if deployment.db.is_sqlite() {
        "SELECT group_concat(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM flow_run GROUP BY status) s"
    } else {
        "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM flow_run GROUP BY status) s"
    })?;
    let answers = stats::summarize(accepted.latencies.clone());
    let runs = stats::summarize(run_latencies);
    stats::table(
        "runs results",
        &[
            ("requests (statuses)", format!("{:?}", accepted.statuses)),
            (
                "accepted req/s",
                format!("{:.0} ({ok} in {wall:.1} s)", ok as f64 / wall),
            ),
            (
                "answer p50/p95/p99/max",
                stats::latency_row(&answers, "202 Accepted"),
            ),
            (
                "runs completed /s (first accepted -> last finished)",
                format!(
                    "{completed_rate:.0} ({finished} in {span:.1} s; target >= {})",
                    match (opts.same_customer, opts.embedded) {
                        (true, _) => 200,
                        (false, true) => 500,
                        (false, false) => 1500,
                    }
                ),
            ),
            (
                "run latency accepted -> finished p50/p95/p99/max",
                stats::latency_row(&runs, "p99 target < 250 ms at half the maximum rate"),
            ),
            (
                "backlog drained after the load",
                format!("{:.1} s", drained_after.as_secs_f64()),
            ),
            (
                "hand-off between one key's runs p50/p95/p99/max",
                if opts.same_customer {
                    stats::latency_row(
                        &stats::summarize(hand_offs(deployment)?),
                        "p99 target < 10 ms",
                    )
                } else {
                    "- (one run per key)".to_owned()
                },
            ),
            ("flow_run rows by status", by_status),
            (
                "accepted runs not finished",
                format!("{}", ok.saturating_sub(finished)),
            ),
        ],
    );
    stats::print_costs(before, after, finished, "runs");
    stats::print_ratios(raw::load(global).as_ref(), completed_rate, before, after);
    Ok(())
}
