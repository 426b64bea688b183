//! Waflow's work: the domain services every face (GraphQL, HTTP, flow steps, CLI) calls, so that
//! each rule lives in one place.
//!
//! The modules form a stack: each imports only the ones listed before it (the order below is
//! checked by the `layers` test at the bottom of this file).
//!
//! 1. **Foundation**, naming no domain: `error`, `crash_points`, `db`, `crypto`, `pagination`,
//!    `rate_limit`, `egress` (every request to a URL a workspace gave), `memo` (rows that never
//!    change, read once), `event_routes` (endpoints and triggers, read once per version),
//!    `sender_directory` (Cloud API senders and app secrets, read once per version),
//!    `validation`, `sandbox` (where workspaces' templates run),
//!    `placeholders`, `events` (the bus), `queue` (apalis jobs, carrying ids only),
//!    `queue_stats`, and `context`: the `Services` every service works in, and its
//!    infrastructure for both profiles.
//! 2. **Message content and providers**: `content` (template components, template parameters,
//!    rich content, media types: pure data and Meta's rules for it), `providers` (Meta's
//!    WhatsApp Cloud API).
//! 3. **Domains**: `workspaces`, `api_keys`, `assistants`, `senders`, `templates`, `ai` (model
//!    calls, prompts, extraction), `webhooks` (outgoing), `messaging` (sending and receiving,
//!    conversations, AI replies, evaluation), `contacts`, `contact_import`.
//! 4. **Automation**: `flows` (definition, steps, engine, triggers, reconciler), `campaigns`.
//! 5. **Reactions**: `reactions`, what follows every event (webhook deliveries, subscribers,
//!    waiting runs, flows, campaigns), in one file; `assembly` registers them on the two profiles.
//! 6. **Processes**: `worker` (the job loops), `health` (readiness).

pub mod crash_points;
pub mod error;
mod poll_timer;

pub mod crypto;
pub mod db;
pub mod egress;
pub mod event_routes;
pub mod memo;
pub mod pagination;
pub mod placeholders;
pub mod rate_limit;
pub mod sandbox;
pub mod sender_directory;
pub mod validation;

pub mod context;
pub mod events;
pub mod queue;
pub mod queue_stats;

pub mod content;
pub mod providers;

pub mod ai;
pub mod api_keys;
pub mod assistants;
pub mod contact_import;
pub mod contacts;
pub mod messaging;
pub mod senders;
pub mod templates;
pub mod webhooks;
pub mod workspaces;

pub mod campaigns;
pub mod flows;

pub mod assembly;
pub mod reactions;

pub mod health;
pub mod worker;

#[cfg(test)]
mod layers;
#[cfg(test)]
mod test_support;

pub use context::{RedisSettings, Services};
pub use crypto::SecretBox;
pub use error::{Error, FieldError, Result};
pub use pagination::{Page, PageRequest};
