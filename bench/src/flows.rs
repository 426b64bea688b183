//! `bench flows`: a live flow per sender, message_received → branch → send_template to the
//! Cloud API stand-in. Webhooks go out open loop at a fixed rate (one new customer each); a
//! run's latency is webhook sent → the stand-in received the template for that customer.
//! One API process (`serve --no-worker`) and 1 or more `waflow worker` processes.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::{
    Global, Result,
    fixture::{self, Sender},
    raw,
    setup::{Api, Deployment},
    stand_in::{self, StandIn},
    stats,
};

#[derive(Args, Clone)]
pub struct Opts {
    /// Webhooks (so runs) per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Worker process counts to try, one run each (e.g. `1,2`).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub workers: Vec<usize>,
    /// Senders (a flow each); each may send at most 1000 messages/s.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Most seconds to wait for runs still in flight after the load.
    #[arg(long, default_value_t = 60)]
    pub drain: u64,
    /// Most webhooks in flight; beyond it a webhook is not sent and counts as an error.
    #[arg(long, default_value_t = 2048)]
    pub max_in_flight: usize,
}

pub async fn run(global: &Global, opts: &Opts) -> Result<()> {
    for &workers in &opts.workers {
        run_once(global, opts, workers).await?;
    }
    Ok(())
}

fn definition(sender: &Sender) -> Value {
    json!({
        "trigger": {"type": "message_received", "senderId": sender.id},
        "steps": [{"id": "route", "type": "branch",
            "branches": [{"when": "'hello' in trigger.message", "steps": [
                {"id": "reply", "type": "send_template", "senderId": sender.id,
                 "template": stand_in::TEMPLATE, "language": "en", "to": "{{ trigger.customer_phone }}"}]}],
            "else": [{"id": "quiet", "type": "stop"}]}]
    })
}

async fn live_flow(api: &Api, sender: &Sender) -> Result<()> {
    let data = api
        .gql(
            "mutation($input: CreateFlowInput!) { createFlow(input: $input) { id } }",
            json!({"input": {"name": format!("Bench {}", sender.phone_number_id), "definition": definition(sender)}}),
        )
        .await?;
    let id = data["createFlow"]["id"].clone();
    api.gql(
        "mutation($id: ID!) { publishFlow(id: $id) { id } setFlowEnabled(id: $id, enabled: true) { enabled } }",
        json!({"id": id}),
    )
    .await?;
    Ok(())
}

/// What the open-loop sender did.
struct Sent {
    /// Per webhook: the customer's digits and when the request started.
    at: Vec<(String, Instant)>,
    statuses: BTreeMap<u16, u64>,
    skipped: u64,
    started: Instant,
}

/// Posts `rate` webhooks a second for `duration`, spread over the senders, without waiting
/// for answers (at most `max_in_flight` outstanding).
async fn open_loop(base: &str, senders: &[Sender], opts: &Opts) -> Result<Sent> {
    let http = fixture::load_client()?;
    let gate = Arc::new(Semaphore::new(opts.max_in_flight));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let total = opts.rate as u64 * opts.duration;
    let started = Instant::now();
    let (mut at, mut skipped, mut tasks) = (Vec::with_capacity(total as usize), 0, Vec::new());
    let mut n = 0u64;
    while n < total {
        let due = ((started.elapsed().as_secs_f64() * opts.rate as f64) as u64).min(total);
        while n < due {
            let customer = fixture::customer(n);
            let sender = &senders[n as usize % senders.len()];
            let body = fixture::text_webhook(sender, &customer, &format!("seq {n} hello"));
            n += 1;
            let Ok(permit) = gate.clone().try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            at.push((customer, Instant::now()));
            let (http, base, statuses) = (http.clone(), base.to_owned(), statuses.clone());
            tasks.push(tokio::spawn(async move {
                let (status, _) = fixture::post_webhook(&http, &base, body).await;
                *statuses
                    .lock()
                    .expect("not poisoned")
                    .entry(status)
                    .or_default() += 1;
                drop(permit);
            }));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in tasks {
        task.await?;
    }
    let statuses = statuses.lock().expect("not poisoned").clone();
    Ok(Sent {
        at,
        statuses,
        skipped,
        started,
    })
}

/// Waits until the stand-in has `expected` sends, or nothing arrived for 10 s, or `drain`.
async fn drain(stand_in: &StandIn, expected: u64, drain: Duration) {
    let deadline = Instant::now() + drain;
    let (mut last, mut last_change) = (stand_in.sends(), Instant::now());
    while Instant::now() < deadline && stand_in.sends() < expected {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = stand_in.sends();
        if now != last {
            (last, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(10) {
            return;
        }
    }
}

async fn run_once(global: &Global, opts: &Opts, workers: usize) -> Result<()> {
    println!(
        "\n== flows: {}/s for {} s, {} senders, 1 API (--no-worker) + {workers} worker(s) ==",
        opts.rate, opts.duration, opts.senders
    );
    let mut deployment = Deployment::new(global)?;
    let base = deployment.start_api(true).await?;
    for _ in 0..workers {
        deployment.start_worker().await?;
    }
    let stand_in = StandIn::start().await?;
    let api = deployment.api(0);
    let senders = fixture::senders(&api, &stand_in, opts.senders, 1000).await?;
    for sender in &senders {
        fixture::sync_templates(&api, sender).await?;
        live_flow(&api, sender).await?;
    }
    let before = stats::snapshot(&deployment);
    let sent = open_loop(&base, &senders, opts).await?;
    let ok = sent.statuses.get(&200).copied().unwrap_or(0);
    drain(&stand_in, ok, Duration::from_secs(opts.drain)).await;
    let mut after = stats::snapshot(&deployment);
    stats::settle_commits(&mut after, &deployment).await;
    report(&deployment, opts, &stand_in, &sent, &before, &after, global)
}

/// What reached the provider: each run's latency, how many arrived in the steady window
/// (5 s after the start to the end of the load) and when the last arrived.
struct Measured {
    latencies: Vec<Duration>,
    steady_rate: f64,
    span: f64,
}

fn measure(opts: &Opts, stand_in: &StandIn, sent: &Sent) -> Measured {
    let arrivals = stand_in.arrivals();
    let steady_from = sent.started + Duration::from_secs(5.min(opts.duration / 2));
    let steady_to = sent.started + Duration::from_secs(opts.duration);
    let (mut latencies, mut steady, mut last) = (Vec::new(), 0u64, None::<Instant>);
    for (customer, at) in &sent.at {
        if let Some(arrived) = arrivals.get(customer) {
            latencies.push(arrived.saturating_duration_since(*at));
            last = Some(last.map_or(*arrived, |l| l.max(*arrived)));
            if *arrived >= steady_from && *arrived < steady_to {
                steady += 1;
            }
        }
    }
    let window = steady_to.duration_since(steady_from).as_secs_f64();
    Measured {
        latencies,
        steady_rate: steady as f64 / window.max(1e-9),
        span: last.map_or(0.0, |l| l.duration_since(sent.started).as_secs_f64()),
    }
}

fn report(
    deployment: &Deployment,
    opts: &Opts,
    stand_in: &StandIn,
    sent: &Sent,
    before: &stats::Snapshot,
    after: &stats::Snapshot,
    global: &Global,
) -> Result<()> {
    let m = measure(opts, stand_in, sent);
    let reached = m.latencies.len() as u64;
    let ok = sent.statuses.get(&200).copied().unwrap_or(0);
    let non_2xx: u64 = sent
        .statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    let runs = deployment.db.scalar(
        "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM flow_run GROUP BY status) s",
    )?;
    let (rate, span) = (m.steady_rate, m.span);
    let s = stats::summarize(m.latencies);
    stats::table(
        "flows results",
        &[
            (
                "webhooks sent",
                format!(
                    "{} (statuses {:?}, {} not sent: in-flight cap)",
                    sent.at.len(),
                    sent.statuses,
                    sent.skipped
                ),
            ),
            (
                "sustained runs/s (provider requests/s in steady state)",
                format!("{rate:.0} (target >= 1000)"),
            ),
            (
                "all runs / time to last provider request",
                format!(
                    "{reached} / {span:.1} s = {:.0}/s",
                    reached as f64 / span.max(1e-9)
                ),
            ),
            (
                "latency p50/p95/p99/max",
                stats::latency_row(&s, "p99 target < 250 ms"),
            ),
            (
                "errors (non-2xx webhooks + not sent)",
                format!("{}", non_2xx + sent.skipped),
            ),
            (
                "runs that never reached the provider",
                format!("{}", ok.saturating_sub(reached)),
            ),
            ("flow_run rows by status", runs),
        ],
    );
    stats::print_costs(before, after, reached, "runs");
    stats::print_ratios(raw::load(global).as_ref(), rate, before, after);
    Ok(())
}
