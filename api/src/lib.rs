//! Waflow's faces: the GraphQL API and HTTP endpoints, and the `waflow` binary's commands.
//! Resolvers are thin: authenticate, convert input, call one service in `waflow_jobs`, convert
//! output.

pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod export;
pub mod flow_hooks;
pub mod graphql;
pub mod graphql_http;
pub mod import;
pub mod key_watch;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod rest_error;
pub mod state;
pub mod webhooks;
pub mod ws;

pub use app::{router, serve_on};
pub use config::Config;
pub use state::AppState;
