//! Limits the HTTP layer and the WebSocket share; endpoints with larger bodies (imports, media
//! uploads) keep theirs beside their handlers.

/// Larger bodies are refused with 413 before they are read: GraphQL documents are small, and
/// bulk imports have their own streamed endpoint. A WebSocket message has the same limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
