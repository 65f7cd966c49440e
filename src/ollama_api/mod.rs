//! Ollama's own API, served by the gateway with Ollama's exact shapes: the pure conversions
//! between a client's native request and a queued job ([`request`]), and from the job's
//! events back to Ollama's NDJSON objects ([`render`]). The routes are in `api::ollama`.
//!
//! Ollama-native clients (Continue, Cline, Roo, Zed, Copilot's Ollama provider, Open WebUI)
//! then get the same queue, tiers, limits, aliases and default model as OpenAI clients.

pub mod render;
pub mod request;

pub use request::{NativeKind, NativeRequest};
