//! Figures: latency percentiles, CPU time and RSS of processes from /proc, the cost counters of
//! PostgreSQL and Redis around a measurement, and the plain tables they are printed in.

use std::time::{Duration, Instant};

use crate::{raw::RawLimits, setup::Deployment};

/// Raises the soft open-file limit to the hard one: thousands of sockets are opened, and the
/// waflow children inherit the limit.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    if limit.rlim_cur < 12_000 {
        eprintln!(
            "warning: open file limit is {}; run `ulimit -n 65536` first for 5,000 subscribers",
            limit.rlim_cur
        );
    }
}

/// Percentiles of a set of latencies.
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort_unstable();
    let at = |q: f64| -> Duration {
        if samples.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((samples.len() as f64) * q).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    Summary {
        count: samples.len(),
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: samples.last().copied().unwrap_or_default(),
    }
}

/// `p50 / p95 / p99 / max (target)`.
pub fn latency_row(s: &Summary, target: &str) -> String {
    format!(
        "{} / {} / {} / {} ({target})",
        ms(s.p50),
        ms(s.p95),
        ms(s.p99),
        ms(s.max)
    )
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// user + system CPU seconds a process has used.
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    (ticks(11) + ticks(12)) / hz
}

/// CPU seconds of every process whose command name is `comm` (PostgreSQL's backends, say;
/// other users of the same server count too).
pub fn cpu_of_command(comm: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .map(|pid| cpu_seconds(&pid))
        .sum()
}

/// Resident set size in KiB (VmRSS).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The cost counters at one moment.
pub struct Snapshot {
    at: Instant,
    cpu: Vec<(String, f64)>,
    bench_cpu: f64,
    commits: u64,
    redis_commands: u64,
}

pub fn snapshot(deployment: &Deployment) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        cpu: deployment
            .pids()
            .into_iter()
            .map(|(name, pid)| (name, cpu_seconds(&pid.to_string())))
            .chain(["postgres", "redis-server"].map(|c| (format!("{c} (all)"), cpu_of_command(c))))
            .collect(),
        bench_cpu: cpu_seconds("self"),
        commits: deployment.db.commits().unwrap_or(0),
        redis_commands: deployment.redis_commands().unwrap_or(0),
    }
}

/// Prints where the time went between two snapshots, per 1000 operations, and the machine's
/// CPU utilisation (2 cores = 200%).
pub fn print_costs(before: &Snapshot, after: &Snapshot, ops: u64, what: &str) {
    let ops = ops.max(1) as f64;
    let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    println!("  where the time goes (per 1000 {what}, over {wall:.1} s):");
    let mut total = 0.0;
    for ((name, b), (_, a)) in before.cpu.iter().zip(&after.cpu) {
        let used = a - b;
        if !name.contains("(all)") {
            total += used;
        }
        println!(
            "    {name:<20} {:>7.3} CPU s   ({:>5.0}% of one core)",
            used / ops * 1000.0,
            used / wall * 100.0
        );
    }
    let bench = after.bench_cpu - before.bench_cpu;
    println!(
        "    {:<20} {:>7.3} CPU s   ({:>5.0}% of one core)",
        "bench client",
        bench / ops * 1000.0,
        bench / wall * 100.0
    );
    println!(
        "    {:<20} {:>7.3} CPU s   ({:>5.0}% of one core)",
        "waflow total",
        total / ops * 1000.0,
        total / wall * 100.0
    );
    println!(
        "    PostgreSQL commits per op: {:.2}   Redis commands per op: {:.2} (whole server)",
        after.commits.saturating_sub(before.commits) as f64 / ops,
        after.redis_commands.saturating_sub(before.redis_commands) as f64 / ops
    );
}

/// Prints the achieved rate against the raw limits of `bench raw`, commits and commands
/// converted with the per-operation counts.
pub fn print_ratios(raw: Option<&RawLimits>, rate: f64, before: &Snapshot, after: &Snapshot) {
    let Some(raw) = raw else {
        println!("  (no raw limits: run `bench raw` first for the ratios)");
        return;
    };
    let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    let commits = after.commits.saturating_sub(before.commits) as f64 / wall;
    let commands = after.redis_commands.saturating_sub(before.redis_commands) as f64 / wall;
    println!(
        "  vs raw limits: {rate:.0} ops/s; PostgreSQL {commits:.0} commits/s = {:.0}% of pgbench {:.0} tps",
        commits / raw.pgbench_tps * 100.0,
        raw.pgbench_tps,
    );
    println!(
        "    Redis {commands:.0} cmds/s = {:.0}% of redis-benchmark SET {:.0} ops/s (LPUSH {:.0}, PUBLISH {:.0})",
        commands / raw.redis_set * 100.0,
        raw.redis_set,
        raw.redis_lpush,
        raw.redis_publish
    );
}

/// Prints `rows` as an aligned two-column table under `title`.
pub fn table(title: &str, rows: &[(&str, String)]) {
    println!("\n{title}");
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("  {k:<width$}  {v}");
    }
}

/// Seconds between two snapshots.
pub fn elapsed(before: &Snapshot, after: &Snapshot) -> f64 {
    after.at.duration_since(before.at).as_secs_f64()
}

/// PostgreSQL 15 backends report their commits up to 10 s after going idle: waits that long,
/// then re-reads the commit counter of `after` (CPU and Redis figures stay as measured).
pub async fn settle_commits(after: &mut Snapshot, deployment: &Deployment) {
    tokio::time::sleep(Duration::from_secs(11)).await;
    if let Ok(commits) = deployment.db.commits() {
        after.commits = commits;
    }
}
