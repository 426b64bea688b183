//! End-to-end tests: a real server on a loopback port, real SQLite and PostgreSQL databases, and
//! HTTP requests as a frontend would send them. One binary, so it links once.

mod ai_replies;
mod assistants;
mod auth;
mod auto_reply;
mod campaigns;
mod cloud_api;
mod contact_import;
mod contacts;
mod conversations;
mod customers;
mod dry_runs;
mod durability;
mod evaluation;
mod flow_examples;
mod flows;
mod hardening;
mod hostile;
mod inbound;
mod media;
mod media_uploads;
mod messaging;
mod migrations;
mod operations;
mod outgoing_webhooks;
mod pagination;
mod rich_messages;
mod rich_templates;
mod scaling;
mod senders;
mod subscriptions;
mod template_review;
mod templates;
mod transcripts;
mod webhooks;
