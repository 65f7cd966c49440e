//! Ollama's native wire types, as far as Seadragon reads them (reference: `ollama-wire.md` §1).
//!
//! Every field is defaulted: Ollama omits zero counts and empty fields (`omitempty`), and older
//! releases lack newer fields such as tool-call ids.

use serde::Deserialize;

/// One NDJSON object of a streamed `/api/chat` answer (also the shape of a non-stream answer).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ChatChunk {
    /// The message part this object carries.
    #[serde(default)]
    pub message: ChunkMessage,
    /// True only on the last object.
    #[serde(default)]
    pub done: bool,
    /// `stop`, `length`, `load`, ... on the last object; empty when the connection closed.
    #[serde(default)]
    pub done_reason: Option<String>,
    /// Prompt tokens; absent when zero.
    #[serde(default)]
    pub prompt_eval_count: u64,
    /// Generated tokens; absent when zero.
    #[serde(default)]
    pub eval_count: u64,
    /// Set instead of everything else when generation failed after the stream started.
    #[serde(default)]
    pub error: Option<String>,
}

/// The `message` of a chat object.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ChunkMessage {
    /// Answer text.
    #[serde(default)]
    pub content: String,
    /// Reasoning text of thinking models.
    #[serde(default)]
    pub thinking: String,
    /// Whole tool calls; Ollama never streams argument fragments.
    #[serde(default)]
    pub tool_calls: Vec<NativeToolCall>,
}

/// A native tool call.
#[derive(Debug, Clone, Deserialize)]
pub struct NativeToolCall {
    /// `call_xxxxxxxx` since Ollama 0.12.10; absent before.
    #[serde(default)]
    pub id: Option<String>,
    /// The function and its arguments.
    pub function: NativeFunction,
}

/// The function part of a native tool call.
#[derive(Debug, Clone, Deserialize)]
pub struct NativeFunction {
    /// Function name.
    #[serde(default)]
    pub name: String,
    /// Arguments as a JSON object (not a string, unlike OpenAI).
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// `GET /api/tags`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct TagsResponse {
    /// Installed models, newest first.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
}

/// One installed model.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
pub struct ModelEntry {
    /// Name with tag, e.g. `llama3.2:latest`.
    #[serde(default)]
    pub name: String,
    /// Same as `name` on current servers.
    #[serde(default)]
    pub model: String,
    /// RFC 3339 with a local offset.
    #[serde(default)]
    pub modified_at: String,
    /// Bytes on disk.
    #[serde(default)]
    pub size: u64,
    /// Details such as family and quantisation.
    #[serde(default)]
    pub details: serde_json::Value,
}

/// Ollama's error body, `{"error":"..."}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// The message.
    pub error: String,
}
