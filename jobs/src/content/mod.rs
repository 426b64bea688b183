//! What a message holds, as pure data with Meta's rules for it: a template's components and the
//! checks of Meta's review, the parameters a send fills them with, rich content (media, location,
//! interactive), and the media types Meta accepts. No database, no network: the template service,
//! the Cloud API provider, messaging and flows all read it.

pub mod media_types;
pub mod rich_content;
pub mod template_components;
pub mod template_parameters;
