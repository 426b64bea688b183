//! Waflow's nouns: one SeaORM entity per table, the string enums stored in them, and value types
//! that parse (an E.164 phone number). Nothing here talks to a provider or knows about GraphQL
//! beyond deriving enum types for it under the `graphql` feature.

pub mod api_key;
pub mod assistant;
pub mod campaign;
pub mod campaign_recipient;
pub mod contact;
pub mod contact_tag;
pub mod contact_window;
pub mod conversation;
pub mod customer_address;
pub mod enums;
pub mod erased_message;
pub mod flow;
pub mod flow_run;
pub mod flow_trigger;
pub mod flow_version;
pub mod inbound_dead_letter;
pub mod message;
pub mod phone;
pub mod schedule_tick;
pub mod sender;
pub mod step_run;
pub mod template;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod workspace;

pub use customer_address::CustomerAddress;
pub use phone::{E164, InvalidPhoneNumber};
