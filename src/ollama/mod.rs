//! Ollama: its native wire types, the HTTP client the worker and the model catalog use, and
//! the bounded reader of its NDJSON streams.

mod client;
pub mod ndjson;
pub mod wire;

pub use client::{OllamaClient, OllamaError};
pub use ndjson::ChatStream;
