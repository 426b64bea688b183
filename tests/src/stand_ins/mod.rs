//! Local stand-ins for the services Waflow calls out to, each a wiremock server on 127.0.0.1 that
//! speaks the real service's wire format: Meta's Cloud API (which refuses what Meta refuses, by
//! [`meta_rules`]) and an OpenAI-compatible model; and a server that hangs up on every request
//! (`silent`).

pub mod llm;
pub mod meta;
pub mod meta_rules;
pub mod silent;
