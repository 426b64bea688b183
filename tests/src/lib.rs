//! The end-to-end harness: `spawn_app` starts a real Waflow server on a loopback port, over a
//! database of its own (a fresh SQLite file, or a fresh PostgreSQL database that is dropped
//! afterwards), with a workspace and its API key ready; tests then speak HTTP to it.
//!
//! The modules, by concern (everything a test uses is re-exported here, so
//! `waflow_tests::spawn_app` and the like need no module path):
//!
//! - [`databases`]: the test's own database ([`TestDatabase`]) and Redis key prefix
//!   ([`RedisNamespace`]), removed when it ends.
//! - [`spawn`]: the running server ([`TestApp`], [`spawn_app`] and its variants,
//!   [`spawn_server`]), workers apart from it ([`Worker`]), and [`on_both_databases`].
//! - [`client`]: GraphQL and HTTP requests to the server, and the parts of an error tests check.
//! - [`fixtures`]: what tests set up through the API (senders, templates, assistants) and the
//!   bodies Meta sends.
//! - [`stand_ins`]: Meta's Cloud API ([`Meta`], refusing what [`meta_rules`] says Meta refuses)
//!   and an OpenAI-compatible model ([`Llm`]).
//! - [`receivers`]: endpoints for outgoing webhooks ([`WebhookReceiver`]) and the
//!   signature both they and Meta's webhooks carry ([`sign`]).
//! - [`statements`]: the statements the server sends, for tests of what work costs
//!   ([`StatementLog`]).
//! - [`subscriber`]: a graphql-transport-ws client ([`Subscriber`]).
//! - [`eventually`](mod@eventually): waiting for what background jobs do.
//! - [`inbound`]: generated inbound Cloud API messages for the property test.

pub mod client;
pub mod databases;
pub mod eventually;
pub mod fixtures;
pub mod inbound;
pub mod receivers;
pub mod spawn;
pub mod stand_ins;
pub mod statements;
pub mod subscriber;

pub use client::{error_code, error_fields};
pub use databases::{
    Backend, DEFAULT_POSTGRES_ADMIN_URL, RedisNamespace, TestDatabase, test_database,
};
pub use eventually::eventually;
pub use fixtures::{body_examples, messages_webhook};
pub use receivers::{WebhookReceiver, sign};
pub use spawn::{
    SHARED_SECRET_KEY, TestApp, Worker, sandbox, spawn_app, spawn_app_with,
    spawn_app_without_workers, spawn_app_without_workers_with, spawn_server,
};
pub use stand_ins::{
    llm::{LLM_KEY, Llm, chat_messages},
    meta::{ACCESS_TOKEN, APP_SECRET, BUSINESS_ACCOUNT_ID, Meta, VERIFY_TOKEN, meta_error},
    meta_rules,
    silent::SilentServer,
};
pub use statements::{StatementLog, spawn_app_logging, verbs};
pub use subscriber::{Closed, Subscriber};
