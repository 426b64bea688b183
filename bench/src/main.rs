//! `bench`: load benchmarks of the release `waflow` binary in the production profile
//! (PostgreSQL + Redis), driving it as child processes the way it is deployed. Each subcommand
//! prints its figures as a plain table; BENCHMARKS.md records them with the command.

mod fanout;
mod fixture;
mod flows;
mod ingest;
mod memory;
mod raw;
mod runs;
mod setup;
mod stand_in;
mod stats;
mod subscriber;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Errors of the bench itself: any failure stops the benchmark with its message.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser)]
#[command(name = "bench", about = "Benchmarks of the release waflow binary")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where the binary and the services are.
#[derive(Args, Clone)]
pub struct Global {
    /// The waflow binary to drive.
    #[arg(long, global = true, default_value = "target/release/waflow")]
    pub waflow: PathBuf,
    /// A PostgreSQL database the bench may connect to, to create and drop its own.
    #[arg(
        long,
        global = true,
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres: String,
    /// The Redis the waflow processes share (keys get a unique prefix per run).
    #[arg(long, global = true, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Query parameters added to the waflow processes' DATABASE_URL, like `sslmode=disable`
    /// (unset: sqlx's default `sslmode=prefer`, TLS when the server offers it).
    #[arg(long, global = true)]
    pub database_params: Option<String>,
    /// RUST_LOG of the waflow processes (unset: waflow's default, `info`).
    #[arg(long, global = true)]
    pub rust_log: Option<String>,
    /// Where `bench raw` stores the raw limits the other benchmarks compare with.
    #[arg(long, global = true, default_value = "target/bench-raw.json")]
    pub raw_file: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Signed webhooks, one text message each, from many concurrent clients.
    Ingest(ingest::Opts),
    /// message_received → branch → send_template to the Cloud API stand-in, open loop.
    Flows(flows::Opts),
    /// graphql-ws subscribers on two API processes, webhooks at a fixed rate.
    Fanout(fanout::Opts),
    /// Idle RSS of `waflow serve` and RSS per open subscription.
    Memory(memory::Opts),
    /// Runs completed per second: webhook → set_variables, closed loop (issue 20).
    Runs(runs::Opts),
    /// pgbench single-row inserts and redis-benchmark SET/LPUSH/PUBLISH: the raw limits.
    Raw(raw::Opts),
    /// raw, ingest, flows, runs, fanout and memory with their defaults.
    All,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    stats::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let mut g = cli.global;
    if !g.waflow.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p waflow-api` or pass --waflow",
            g.waflow.display()
        )
        .into());
    }
    // The children run in their own folders: the path must not be relative.
    g.waflow = std::fs::canonicalize(&g.waflow)?;
    match cli.command {
        Command::Ingest(o) => ingest::run(&g, &o).await,
        Command::Flows(o) => flows::run(&g, &o).await,
        Command::Fanout(o) => fanout::run(&g, &o).await,
        Command::Memory(o) => memory::run(&g, &o).await,
        Command::Raw(o) => raw::run(&g, &o).await,
        Command::Runs(o) => runs::run(&g, &o).await,
        Command::All => {
            raw::run(&g, &default_opts()).await?;
            ingest::run(&g, &default_opts()).await?;
            flows::run(&g, &default_opts()).await?;
            runs::run(&g, &default_opts()).await?;
            fanout::run(&g, &default_opts()).await?;
            memory::run(&g, &default_opts()).await
        }
    }
}

/// A subcommand's options as if given no flags.
fn default_opts<T: clap::FromArgMatches + clap::Args>() -> T {
    let command = T::augment_args(clap::Command::new("defaults"));
    let matches = command.get_matches_from(["defaults"]);
    T::from_arg_matches(&matches).expect("every option has a default")
}
