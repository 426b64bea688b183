//! Waflow's work: the domain services every face (GraphQL, HTTP, flow steps, CLI) calls, so that
//! each rule lives in one place.
//!
//! Layout, roughly from the bottom up:
//! - `db`, `crypto`, `error`, `validation`, `pagination`, `placeholders`, `rate_limit`,
//!   `egress` (every request to a URL a workspace gave), `sandbox` (where workspaces'
//!   templates run), `events` and `event_router` (the bus), `queue` (apalis jobs);
//! - `providers`: Meta's WhatsApp Cloud API (`cloud_api`, with media);
//! - `services`: the `Services` context and one service per area (senders, templates and their
//!   parameters, contacts, assistants, webhooks, AI replies, evaluation, media types, rich
//!   content);
//! - `messaging`: sending and receiving (window, store, ingest, lifecycle, media); `ai`: model
//!   calls, prompts, scripted replies, extraction;
//! - `flows` (definition, validation, engine, dry runs, triggers, reconciler) and `campaigns`;
//! - `worker`, `health`: the processes' loops and readiness.
//!
//! Issue 19 makes this a strict stack; today some lower modules still call upward.

pub mod ai;
pub mod campaigns;
pub mod crash_points;
pub mod crypto;
pub mod db;
pub mod egress;
pub mod error;
mod event_router;
pub mod events;
pub mod flows;
pub mod health;
pub mod messaging;
pub mod pagination;
pub mod placeholders;
mod poll_timer;
pub mod providers;
pub mod queue;
pub mod queue_stats;
pub mod rate_limit;
pub mod sandbox;
pub mod services;
#[cfg(test)]
mod test_support;
pub mod validation;
pub mod worker;

pub use crypto::SecretBox;
pub use error::{Error, FieldError, Result};
pub use pagination::{Page, PageRequest};
pub use services::{RedisSettings, Services};
