//! `bench fanout`: graphql-ws subscribers on two `serve --no-worker` processes (plus one
//! worker), each subscribed to `messageReceived(senderId)` of one of S senders, while
//! webhooks arrive at a fixed rate, alternately at either API. A delivery's latency is webhook
//! sent → the subscriber read the event (the message text carries the sequence number).

use std::{
    collections::{HashMap, HashSet},
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
    /// Subscribers, split evenly over the two API processes.
    #[arg(long, default_value_t = 5000)]
    pub subscribers: usize,
    /// Senders; subscriber i follows sender i mod S, so an event reaches subscribers/S of them.
    #[arg(long, default_value_t = 100)]
    pub senders: usize,
    /// Webhooks (events) per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Events per second of the extreme case (one sender: every subscriber gets every event);
    /// 0 skips it.
    #[arg(long, default_value_t = 20)]
    pub extreme_rate: u32,
    /// Seconds of the extreme case.
    #[arg(long, default_value_t = 10)]
    pub extreme_duration: u64,
}

/// One fan-out measurement.
struct Case {
    subscribers: usize,
    senders: usize,
    rate: u32,
    duration: u64,
}

pub async fn run(global: &Global, opts: &Opts) -> Result<()> {
    let main = Case {
        subscribers: opts.subscribers,
        senders: opts.senders,
        rate: opts.rate,
        duration: opts.duration,
    };
    run_case(global, &main).await?;
    if opts.extreme_rate > 0 {
        let extreme = Case {
            subscribers: opts.subscribers,
            senders: 1,
            rate: opts.extreme_rate,
            duration: opts.extreme_duration,
        };
        run_case(global, &extreme).await?;
    }
    Ok(())
}

/// Subscriber i: sender i mod S, API (i / S) mod 2, so each sender's subscribers are on both.
fn placement(i: usize, senders: usize) -> (usize, usize) {
    (i % senders, (i / senders) % 2)
}

async fn run_case(global: &Global, case: &Case) -> Result<()> {
    println!(
        "\n== fanout: {} subscribers on 2 APIs, {} senders ({} subscribers per event), {} events/s for {} s ==",
        case.subscribers,
        case.senders,
        case.subscribers / case.senders,
        case.rate,
        case.duration
    );
    let mut deployment = Deployment::new(global)?;
    deployment.start_api(true).await?;
    deployment.start_api(true).await?;
    deployment.start_worker().await?;
    let stand_in = StandIn::start().await?;
    let senders = fixture::senders(&deployment.api(0), &stand_in, case.senders, 80).await?;
    let opened = Instant::now();
    let sockets = subscriber::open_many(&deployment.key, case.subscribers, 128, |i| {
        let (sender, api) = placement(i, case.senders);
        (
            deployment.apis[api].clone(),
            subscriber::message_received(Some(&senders[sender].id)),
        )
    })
    .await?;
    println!(
        "  {} subscriptions open in {:.1} s; RSS {}",
        sockets.len(),
        opened.elapsed().as_secs_f64(),
        rss_line(&deployment)
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listeners: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| tokio::spawn(subscriber::listen(i as u32, socket, tx.clone())))
        .collect();
    drop(tx);
    let before = stats::snapshot(&deployment);
    let sent = send(&deployment.apis, &senders, case).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut after = stats::snapshot(&deployment);
    for listener in &listeners {
        listener.abort();
    }
    let mut seen = Vec::new();
    while let Some(s) = rx.recv().await {
        seen.push(s);
    }
    stats::settle_commits(&mut after, &deployment).await;
    report(global, case, &sent, seen, &deployment, &before, &after)
}

/// The webhooks sent: per sequence number when the request started and its status.
struct SentEvents {
    at: Vec<Instant>,
    status: Vec<u16>,
}

impl SentEvents {
    /// How many webhooks got each HTTP status (0: no answer).
    fn statuses(&self) -> std::collections::BTreeMap<u16, u64> {
        let mut statuses = std::collections::BTreeMap::new();
        for status in &self.status {
            *statuses.entry(*status).or_default() += 1;
        }
        statuses
    }
}

async fn send(apis: &[String], senders: &[Sender], case: &Case) -> Result<SentEvents> {
    let http = fixture::load_client()?;
    let total = (case.rate as u64 * case.duration) as usize;
    let started = Instant::now();
    let mut at = Vec::with_capacity(total);
    let mut tasks = Vec::with_capacity(total);
    while at.len() < total {
        let due = ((started.elapsed().as_secs_f64() * case.rate as f64) as usize).min(total);
        while at.len() < due {
            let n = at.len();
            let body = fixture::text_webhook(
                &senders[n % senders.len()],
                &fixture::customer(n as u64),
                &format!("seq {n} hello"),
            );
            let (http, base) = (http.clone(), apis[n % apis.len()].clone());
            at.push(Instant::now());
            tasks.push(tokio::spawn(async move {
                fixture::post_webhook(&http, &base, body).await.0
            }));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut status = Vec::with_capacity(total);
    for task in tasks {
        status.push(task.await?);
    }
    Ok(SentEvents { at, status })
}

fn rss_line(deployment: &Deployment) -> String {
    deployment
        .pids()
        .into_iter()
        .map(|(name, pid)| format!("{name} {} MB", stats::rss_kb(pid) / 1024))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deliveries the stored messages call for: each reaches its sender's subscribers (a webhook
/// that timed out at the client may still have been stored).
fn expected(deployment: &Deployment, case: &Case) -> Result<u64> {
    let mut per_sender = vec![0u64; case.senders];
    for i in 0..case.subscribers {
        per_sender[placement(i, case.senders).0] += 1;
    }
    let stored = deployment.db.scalar(
        "SELECT coalesce(string_agg(split_part(body, ' ', 2), ','), '') FROM message WHERE direction = 'INBOUND'",
    )?;
    Ok(stored
        .split(',')
        .filter_map(|n| n.parse::<usize>().ok())
        .map(|n| per_sender[n % case.senders])
        .sum())
}

/// What the subscribers saw, summed up.
struct Tally {
    latencies: Vec<Duration>,
    hearing: HashSet<u32>,
    stopped: HashSet<u32>,
    errors: HashMap<String, u64>,
}

fn tally(seen: Vec<Seen>, sent: &SentEvents) -> Tally {
    let mut t = Tally {
        latencies: Vec::new(),
        hearing: HashSet::new(),
        stopped: HashSet::new(),
        errors: HashMap::new(),
    };
    for s in seen {
        match s {
            Seen::Event {
                subscriber,
                seq,
                at,
            } => {
                t.hearing.insert(subscriber);
                if let Some(sent_at) = sent.at.get(seq as usize) {
                    t.latencies.push(at.saturating_duration_since(*sent_at));
                }
            }
            Seen::Error { subscriber, text } => {
                t.stopped.insert(subscriber);
                *t.errors
                    .entry(text.chars().take(160).collect())
                    .or_default() += 1;
            }
        }
    }
    t
}

fn report(
    global: &Global,
    case: &Case,
    sent: &SentEvents,
    seen: Vec<Seen>,
    deployment: &Deployment,
    before: &stats::Snapshot,
    after: &stats::Snapshot,
) -> Result<()> {
    let statuses = sent.statuses();
    let expected = expected(deployment, case)?;
    let Tally {
        latencies,
        hearing,
        stopped,
        errors,
    } = tally(seen, sent);
    let received = latencies.len() as u64;
    let failed = sent.status.iter().filter(|s| **s != 200).count();
    let wall = stats::elapsed(before, after).max(1e-9);
    let s = stats::summarize(latencies);
    stats::table(
        "fanout results",
        &[
            (
                "events sent",
                format!("{} ({failed} non-200: {statuses:?})", sent.at.len()),
            ),
            (
                "deliveries expected / received",
                format!(
                    "{expected} / {received} (missing {})",
                    expected.saturating_sub(received)
                ),
            ),
            (
                "deliveries/s",
                format!(
                    "{:.0} (over {wall:.1} s incl. 3 s drain)",
                    received as f64 / wall
                ),
            ),
            (
                "latency p50/p95/p99/max",
                stats::latency_row(&s, "p99 target < 100 ms"),
            ),
            (
                "subscribers that heard events",
                format!("{} of {}", hearing.len(), case.subscribers),
            ),
            (
                "subscriptions stopped (error/complete)",
                format!("{} {errors:?}", stopped.len()),
            ),
            ("RSS after", rss_line(deployment)),
        ],
    );
    stats::print_costs(before, after, received.max(1), "deliveries");
    stats::print_ratios(raw::load(global).as_ref(), case.rate as f64, before, after);
    Ok(())
}
