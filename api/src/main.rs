//! The `waflow` binary: one program for the API server, the workers and administration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use waflow_api::{AppState, Config, app::shutdown_signal, router, serve_on};
use waflow_jobs::{Services, db, worker};

/// mimalloc instead of glibc's malloc: under load, glibc's allocator (`_int_malloc`,
/// `malloc_consolidate`, `unlink_chunk`) took a fifth of the API process's CPU
/// (BENCHMARKS.md, "Ninth session").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "waflow",
    version,
    about = "WhatsApp automation backend: GraphQL API, flows, workers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (and, unless --no-worker, run the workers in the same process).
    Serve {
        /// Serve the API only; run `waflow worker` processes for the background work.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run the background workers only.
    Worker,
    /// Apply pending database migrations.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Run workspaces' templates for a server process, on stdin and stdout (started by
    /// `serve` and `worker`, never by hand).
    #[command(hide = true)]
    Sandbox,
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace; its API key is printed once, alone on the last line.
    Create { name: String },
    /// List the workspaces: id, name, when created.
    List,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create another API key for a workspace (one whose keys were lost); printed once, alone
    /// on the last line.
    Create {
        /// The workspace's id, or its name when no other workspace has it.
        workspace: String,
        /// What the key is for.
        #[arg(long, default_value = "command line")]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The sandbox caps its own memory before anything else runs: no runtime, no threads.
    if let Command::Sandbox = cli.command {
        return match waflow_jobs::sandbox::child::serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: sandbox: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(error) = init_logging() {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr as text, or as one JSON object per line with `WAFLOW_LOG_FORMAT=json`
/// (for log collectors); the span fields (run, conversation, request ids) come along.
fn init_logging() -> Result<(), String> {
    // Read here too: logging starts before the configuration is, and may be set in `.env`.
    let _ = dotenvy::dotenv();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("WAFLOW_LOG_FORMAT").as_deref().map(str::trim) {
        Err(_) | Ok("" | "text") => logs.init(),
        Ok("json") => logs.json().with_current_span(true).init(),
        Ok(other) => {
            return Err(format!(
                "WAFLOW_LOG_FORMAT is invalid: {other:?} is neither \"text\" nor \"json\""
            ));
        }
    }
    Ok(())
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

async fn run(cli: Cli) -> Result<(), AnyError> {
    if let Command::Schema = cli.command {
        print!("{}", waflow_api::graphql::sdl());
        return Ok(());
    }
    let config = Config::from_env()?;
    match cli.command {
        Command::Schema | Command::Sandbox => unreachable!("handled above"),
        Command::Migrate => {
            let db = db::connect(&config.database_url).await?;
            let pending = db::pending_migrations(&db).await?;
            db::migrate(&db).await?;
            println!("applied {pending} migration(s)");
        }
        Command::Workspace {
            command: WorkspaceCommand::Create { name },
        } => {
            let services = open(&config).await?;
            let (workspace, key) = services.workspaces().create(&name).await?;
            println!("created workspace {:?} ({})", workspace.name, workspace.id);
            println!("its API key, shown only now, is on the next line:");
            println!("{}", key.plaintext);
        }
        Command::Workspace {
            command: WorkspaceCommand::List,
        } => {
            let services = open(&config).await?;
            for workspace in services.workspaces().list().await? {
                println!(
                    "{}  {}  created {}",
                    workspace.id,
                    workspace.name,
                    workspace.created_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
        }
        Command::ApiKey {
            command: ApiKeyCommand::Create { workspace, name },
        } => {
            let services = open(&config).await?;
            let workspace = services.workspaces().find(&workspace).await?;
            let key = services.api_keys().create(workspace.id, &name).await?;
            println!(
                "created API key {:?} for workspace {:?} ({})",
                name, workspace.name, workspace.id
            );
            println!("it is shown only now, on the next line:");
            println!("{}", key.plaintext);
        }
        Command::Serve { no_worker } => {
            config.check_runtime_profile()?;
            let services = open(&config).await?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| format!("cannot listen on {} (WAFLOW_LISTEN): {e}", config.listen))?;
            tracing::info!(
                "serving GraphQL on {}/graphql{}",
                config.public_url,
                if no_worker {
                    " (API only)"
                } else {
                    " with workers"
                }
            );
            let state = AppState::new(services.clone());
            let shutdown = state.shutdown.clone();
            tokio::spawn({
                let shutdown = shutdown.clone();
                async move {
                    shutdown_signal().await;
                    tracing::info!(
                        "stopping: no new requests or jobs; finishing what is in flight"
                    );
                    shutdown.trigger();
                }
            });
            let api = serve_on(
                listener,
                router(state, &config.cors_origins),
                shutdown.stopped(),
            );
            if no_worker {
                api.await?;
            } else {
                let workers = worker::run(services, shutdown.stopped());
                let (api, workers) = tokio::join!(api, workers);
                api?;
                workers?;
            }
            // Open WebSockets send their close frame (1001) before the process is gone.
            shutdown.drained(std::time::Duration::from_secs(5)).await;
        }
        Command::Worker => {
            config.check_runtime_profile()?;
            let services = open(&config).await?;
            tracing::info!("worker started");
            worker::run(services, shutdown_signal()).await?;
        }
    }
    Ok(())
}

/// Connects, brings the schema up to date, loads the secrets key and sets up the profile's
/// queue and rate limiter (SQLite and in-process, or Redis).
async fn open(config: &Config) -> Result<Services, AnyError> {
    let secrets = config.secret_box()?;
    let db = db::connect(&config.database_url)
        .await
        .map_err(|e| format!("cannot open the database (DATABASE_URL): {e}"))?;
    db::migrate(&db).await?;
    let mut services = match config.redis() {
        Some(redis) => Services::production(db, secrets, &redis).await?,
        None => Services::embedded(db, secrets).await?,
    };
    services.evaluation_timeout = config.evaluation_timeout;
    services.run_retention = config.run_retention;
    services.inbound_max_age = config.inbound_max_age;
    services.run_backlog = waflow_jobs::queue_stats::RunBacklog::new(
        services.jobs.flows.clone(),
        config.max_run_backlog,
    );
    services
        .egress
        .allow_private_networks(config.allow_private_networks);
    // Templates run in this same program, started again as `waflow sandbox`.
    let this_program = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to start its template sandbox: {e}"))?;
    services.sandbox = waflow_jobs::sandbox::Sandbox::command(this_program, &["sandbox"]);
    Ok(services)
}
