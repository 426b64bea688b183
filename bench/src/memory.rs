//! `bench memory`: resident memory (VmRSS) of an idle `waflow serve` in the embedded default
//! (SQLite in an empty folder, no configuration) and in the production profile, and what each
//! open graphql-ws subscription adds to it.

use std::{process::Stdio, time::Duration};

use clap::Args;

use crate::{
    Global, Result,
    setup::{self, Deployment},
    stats, subscriber,
};

#[derive(Args, Clone)]
pub struct Opts {
    /// Seconds to stay idle before reading RSS.
    #[arg(long, default_value_t = 3)]
    pub idle: u64,
    /// Subscription counts to measure, cumulatively, on one process.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub subscriptions: Vec<usize>,
}

/// Kills the embedded server when dropped.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(global: &Global, opts: &Opts) -> Result<()> {
    println!(
        "\n== memory: idle {} s, subscriptions {:?} ==",
        opts.idle, opts.subscriptions
    );
    let embedded = embedded_idle(global, opts).await?;
    let mut deployment = Deployment::new(global)?;
    deployment.start_api(false).await?;
    tokio::time::sleep(Duration::from_secs(opts.idle)).await;
    let pid = deployment.pids()[0].1;
    let idle = stats::rss_kb(pid);
    let mut rows: Vec<(String, String)> = vec![
        (
            "idle RSS, embedded (SQLite, no env)".into(),
            format!("{:.1} MB (target < 50 MB)", embedded as f64 / 1024.0),
        ),
        (
            "idle RSS, production (PostgreSQL + Redis)".into(),
            format!("{:.1} MB (target < 50 MB)", idle as f64 / 1024.0),
        ),
    ];
    let mut sockets = Vec::new();
    // The RSS and count of the step before: what a further subscription adds leaves out what the
    // first ones grow once (the runtime's and the allocator's own structures).
    let mut before: Option<(u64, usize)> = None;
    for &target in &opts.subscriptions {
        let more = target.saturating_sub(sockets.len());
        let base = deployment.apis[0].clone();
        let query = subscriber::message_received(None);
        sockets.extend(
            subscriber::open_many(&deployment.key, more, 128, |_| {
                (base.clone(), query.clone())
            })
            .await?,
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = stats::rss_kb(pid);
        let per = rss.saturating_sub(idle) as f64 / sockets.len().max(1) as f64;
        rows.push((
            format!("RSS with {} subscriptions", sockets.len()),
            format!(
                "{:.1} MB = {per:.1} KB per subscription (target < 20 KB)",
                rss as f64 / 1024.0
            ),
        ));
        if let Some((rss_before, count_before)) = before
            && sockets.len() > count_before
        {
            let added =
                rss.saturating_sub(rss_before) as f64 / (sockets.len() - count_before) as f64;
            rows.push((
                format!(
                    "  each of subscriptions {}..{}",
                    count_before + 1,
                    sockets.len()
                ),
                format!("{added:.1} KB"),
            ));
        }
        before = Some((rss, sockets.len()));
    }
    let view: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    stats::table("memory results", &view);
    drop(sockets);
    Ok(())
}

/// RSS in KiB of `waflow serve` in an empty folder with nothing configured but the port.
async fn embedded_idle(global: &Global, opts: &Opts) -> Result<u64> {
    let dir = std::env::temp_dir().join(format!(
        "waflow-bench-mem-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let listen = format!("127.0.0.1:{}", setup::free_port()?);
    let child = std::process::Command::new(&global.waflow)
        .arg("serve")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAFLOW_LISTEN", &listen)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let guard = Guard(child);
    setup::wait_ready(&format!("http://{listen}")).await?;
    tokio::time::sleep(Duration::from_secs(opts.idle)).await;
    let rss = stats::rss_kb(guard.0.id());
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rss)
}
