//! OpenAI wire types and the pure conversions between OpenAI and Ollama shapes.
//!
//! The gateway uses [`request`] to validate a client's body and turn it into Ollama's native
//! request before anything is queued; the worker uses [`convert`] to turn Ollama's NDJSON objects
//! into [`Delta`]s; the gateway uses [`render`] to write them as exact OpenAI chunks or one
//! completion object, and [`content_frame`] for the plain text delta of most tokens.
//!
//! The other OpenAI APIs each have one module holding both directions: [`completions`]
//! (`/v1/completions` ⇄ `/api/generate`), [`embeddings`] (`/v1/embeddings` ⇄ `/api/embed`)
//! and [`responses`] (`/v1/responses` ⇄ `/api/chat`).

pub mod completions;
pub mod content_frame;
pub mod convert;
pub mod embeddings;
mod messages;
pub mod render;
pub mod request;
pub mod responses;
mod service_tier;
mod types;

pub use request::{ChatRequest, RequestError, ServiceTier};
pub use types::{Delta, ErrorBody, ErrorDetail, ToolCall, Usage};
