//! Ollama: its native wire types, the HTTP client the worker and the model catalog use (with a
//! lean HTTP/1.1 path for the streamed generations), and the bounded reader of its NDJSON
//! streams.

mod body;
mod client;
mod http1;
#[cfg(test)]
mod http1_tests;
pub mod ndjson;
pub mod wire;

pub use client::{OllamaClient, OllamaError};
pub use ndjson::ChatStream;
