//! `bench ingest`: concurrent clients post signed webhooks, one text message from a new
//! customer each (or from one of `--customers` in turn), to one API process; the latency is
//! the HTTP round trip (the handler answers 200 only after the message, contact and
//! conversation are committed and the event is published). Afterwards the stored inbound messages must equal the 200 answers, and a
//! subscriber must have heard as many `messageReceived` events.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Args;
use tokio::sync::mpsc;

use crate::{
    Global, Result,
    fixture::{self, Sender},
    raw,
    setup::Deployment,
    stand_in::StandIn,
    stats,
    subscriber::{self, Seen},
};

#[derive(Args, Clone)]
pub struct Opts {
    /// Seconds of measured load.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Concurrent clients, each posting one webhook at a time.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Run the workers inside `serve` instead of a separate `waflow worker`.
    #[arg(long)]
    pub in_process_worker: bool,
    /// Customers writing in turn, so that most messages come from a known contact in a
    /// conversation that goes on, as in a live deployment (0: a new customer per message).
    #[arg(long, default_value_t = 0)]
    pub customers: u64,
}

/// What the clients saw.
#[derive(Default)]
pub struct Outcome {
    pub latencies: Vec<Duration>,
    pub statuses: BTreeMap<u16, u64>,
}

impl Outcome {
    pub fn ok(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0)
    }

    pub fn errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }
}

/// `concurrency` closed-loop clients posting for `duration`, messages numbered from `next`,
/// each from a new customer or, with `customers` > 0, from one of that many in turn.
pub async fn closed_loop(
    base: &str,
    sender: &Sender,
    concurrency: usize,
    duration: Duration,
    next: Arc<AtomicU64>,
    customers: u64,
) -> Result<Outcome> {
    let http = fixture::load_client()?;
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, base, sender, next) =
            (http.clone(), base.to_owned(), sender.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let customer = if customers == 0 { n } else { n % customers };
                let body = fixture::text_webhook(
                    &sender,
                    &fixture::customer(customer),
                    &format!("seq {n} hello"),
                );
                let (status, took) = fixture::post_webhook(&http, &base, body).await;
                *out.statuses.entry(status).or_default() += 1;
                out.latencies.push(took);
            }
            out
        }));
    }
    let mut all = Outcome::default();
    for task in tasks {
        let out = task.await?;
        all.latencies.extend(out.latencies);
        for (s, n) in out.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
    }
    Ok(all)
}

pub async fn run(global: &Global, opts: &Opts) -> Result<()> {
    let layout = if opts.in_process_worker {
        "serve (workers in-process)"
    } else {
        "serve --no-worker + 1 worker"
    };
    let writers = match opts.customers {
        0 => "a new customer per message".to_owned(),
        n => format!("{n} customers in turn"),
    };
    println!(
        "\n== ingest: {} clients, {} s, {layout}, {writers} ==",
        opts.concurrency, opts.duration
    );
    let mut deployment = Deployment::new(global)?;
    let base = deployment.start_api(!opts.in_process_worker).await?;
    if !opts.in_process_worker {
        deployment.start_worker().await?;
    }
    let stand_in = StandIn::start().await?;
    let sender = fixture::senders(&deployment.api(0), &stand_in, 1, 80)
        .await?
        .remove(0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let query = subscriber::message_received(None);
    let socket = subscriber::open(&base, &deployment.key, &query).await?;
    let listener = tokio::spawn(subscriber::listen(0, socket, tx));

    let next = Arc::new(AtomicU64::new(0));
    let (clients, warm_up) = (opts.concurrency, Duration::from_secs(2));
    let customers = opts.customers;
    let warm = closed_loop(&base, &sender, clients, warm_up, next.clone(), customers).await?;
    let before = stats::snapshot(&deployment);
    let measured = Duration::from_secs(opts.duration);
    let load = closed_loop(&base, &sender, clients, measured, next, customers).await?;
    let mut after = stats::snapshot(&deployment);
    stats::settle_commits(&mut after, &deployment).await;
    listener.abort();
    let (mut events, mut event_errors) = (0u64, 0u64);
    while let Ok(seen) = rx.try_recv() {
        match seen {
            Seen::Event { .. } => events += 1,
            Seen::Error { .. } => event_errors += 1,
        }
    }
    let heard = format!("{events} (errors {event_errors})");
    report(global, &deployment, &warm, &load, heard, &before, &after)
}

fn report(
    global: &Global,
    deployment: &Deployment,
    warm: &Outcome,
    load: &Outcome,
    heard: String,
    before: &stats::Snapshot,
    after: &stats::Snapshot,
) -> Result<()> {
    let count = |sql: &str| -> Result<u64> { Ok(deployment.db.scalar(sql)?.parse()?) };
    let stored = count("SELECT count(*) FROM message WHERE direction = 'INBOUND'")?;
    let conversations = count("SELECT count(*) FROM conversation")?;
    let answered = warm.ok() + load.ok();
    let verdict = if stored == answered {
        "equal"
    } else {
        "MISMATCH"
    };
    let rate = load.ok() as f64 / stats::elapsed(before, after).max(1e-9);
    let s = stats::summarize(load.latencies.clone());
    stats::table(
        "ingest results",
        &[
            (
                "throughput",
                format!("{rate:.0} messages/s (target >= 2000)"),
            ),
            (
                "latency p50/p95/p99/max",
                stats::latency_row(&s, "p99 target < 50 ms"),
            ),
            (
                "requests",
                format!("{} (statuses {:?})", s.count, load.statuses),
            ),
            (
                "errors (non-2xx or failed)",
                format!("{}", load.errors() + warm.errors()),
            ),
            (
                "stored inbound vs 200 answers",
                format!("{stored} vs {answered} ({verdict})"),
            ),
            ("conversations", format!("{conversations}")),
            ("messageReceived events heard", heard),
        ],
    );
    stats::print_costs(before, after, load.ok(), "messages");
    stats::print_ratios(raw::load(global).as_ref(), rate, before, after);
    Ok(())
}
