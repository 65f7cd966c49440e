//! Ollama: its native wire types and the HTTP client the worker and the model catalog use.

mod client;
pub mod wire;

pub use client::{ChatStream, OllamaClient, OllamaError};
