//! `bench raw`: the raw limits of this machine's PostgreSQL and Redis, measured with their own
//! tools, that the other benchmarks compare with: pgbench single-row insert transactions/s on a
//! scratch table, and redis-benchmark SET, LPUSH and PUBLISH ops/s on bench-prefixed keys.

use std::process::Command;

use clap::Args;
use serde_json::{Value, json};

use crate::{
    Global, Result,
    setup::{Database, psql},
    stats,
};

#[derive(Args, Clone)]
pub struct Opts {
    /// Seconds of pgbench.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// pgbench clients.
    #[arg(long, default_value_t = 4)]
    pub clients: u32,
    /// redis-benchmark requests per command.
    #[arg(long, default_value_t = 100_000)]
    pub requests: u32,
}

/// The raw limits, as stored by `bench raw`.
pub struct RawLimits {
    pub pgbench_tps: f64,
    pub redis_set: f64,
    pub redis_lpush: f64,
    pub redis_publish: f64,
}

/// The raw limits of the last `bench raw`, if it ran.
pub fn load(global: &Global) -> Option<RawLimits> {
    let text = std::fs::read_to_string(&global.raw_file).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(RawLimits {
        pgbench_tps: v["pgbench_tps"].as_f64()?,
        redis_set: v["redis_set"].as_f64()?,
        redis_lpush: v["redis_lpush"].as_f64()?,
        redis_publish: v["redis_publish"].as_f64()?,
    })
}

pub async fn run(global: &Global, opts: &Opts) -> Result<()> {
    println!(
        "\n== raw: pgbench {} clients {} s, redis-benchmark -n {} ==",
        opts.clients, opts.seconds, opts.requests
    );
    let pgbench_tps = pgbench(global, opts)?;
    let prefix = format!("waflow-bench-raw-{}:", uuid::Uuid::now_v7().simple());
    let redis = |args: &[&str]| redis_benchmark(global, opts, args);
    let set_key = format!("{prefix}k");
    let list_key = format!("{prefix}l");
    let channel = format!("{prefix}c");
    let redis_set = redis(&["SET", &set_key, "value"])?;
    let redis_lpush = redis(&["LPUSH", &list_key, "value"])?;
    let redis_publish = redis(&["PUBLISH", &channel, "value"])?;
    let _ = Command::new("redis-cli")
        .args(["-u", &global.redis, "DEL", &set_key, &list_key])
        .output();
    let limits = json!({"pgbench_tps": pgbench_tps, "redis_set": redis_set,
                        "redis_lpush": redis_lpush, "redis_publish": redis_publish});
    if let Some(dir) = global.raw_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&global.raw_file, limits.to_string())?;
    stats::table(
        "raw limits",
        &[
            (
                "pgbench single-row INSERT",
                format!("{pgbench_tps:.0} transactions/s ({} clients)", opts.clients),
            ),
            (
                "redis-benchmark SET",
                format!("{redis_set:.0} ops/s (50 clients, no pipelining)"),
            ),
            ("redis-benchmark LPUSH", format!("{redis_lpush:.0} ops/s")),
            (
                "redis-benchmark PUBLISH",
                format!("{redis_publish:.0} ops/s"),
            ),
        ],
    );
    println!("  stored in {}", global.raw_file.display());
    Ok(())
}

/// pgbench with a one-INSERT script on a scratch table of a scratch database.
fn pgbench(global: &Global, opts: &Opts) -> Result<f64> {
    let db = Database::create(&global.postgres)?;
    psql(
        &db.url,
        "CREATE TABLE scratch (id bigserial PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    )?;
    let script = std::env::temp_dir().join(format!("{}.sql", db.name));
    std::fs::write(
        &script,
        "INSERT INTO scratch (body) VALUES ('hello from pgbench');\n",
    )?;
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &opts.clients.to_string(),
            "-j",
            "2",
            "-T",
            &opts.seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(&db.url)
        .output()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| {
            l.trim_start_matches("tps = ")
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| {
            format!(
                "no tps in pgbench output: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into()
        })
}

/// redis-benchmark -q of one command; ops/s.
fn redis_benchmark(global: &Global, opts: &Opts, command: &[&str]) -> Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-u", &global.redis, "-q", "-n", &opts.requests.to_string()])
        .args(command)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `-q` prints `<command>: 123456.79 requests per second, p50=…` after `\r` progress lines.
    text.split(" requests per second")
        .next()
        .filter(|_| text.contains(" requests per second"))
        .and_then(|head| head.rsplit([' ', '\r', '\n']).next()?.parse().ok())
        .ok_or_else(|| format!("no ops/s in redis-benchmark output: {text}").into())
}
