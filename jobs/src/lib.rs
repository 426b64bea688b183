//! Waflow's work: the domain services every face (GraphQL, HTTP, flow steps, CLI) calls, so that
//! each rule lives in one place. Later issues add provider clients, the event bus and the apalis
//! jobs here.

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
