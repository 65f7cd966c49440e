//! Ollama's native wire types, as far as Seadragon reads them (Ollama's `api/types.go`).
//!
//! Every field is defaulted: Ollama omits zero counts and empty fields (`omitempty`), and older
//! releases lack newer fields such as tool-call ids.

use serde::Deserialize;

/// One NDJSON object of a streamed `/api/chat` answer (also the shape of a non-stream answer),
/// or of `/api/generate`, whose text and reasoning sit at the top level instead.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ChatChunk {
    /// The message part this object carries.
    #[serde(default)]
    pub message: ChunkMessage,
    /// `/api/generate` only: answer text.
    #[serde(default)]
    pub response: String,
    /// `/api/generate` only: reasoning text.
    #[serde(default)]
    pub thinking: String,
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

/// `POST /api/embed`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct EmbedResponse {
    /// One L2-normalised vector per input, in input order.
    #[serde(default)]
    pub embeddings: Vec<Vec<f32>>,
    /// Tokens of all inputs; absent when zero.
    #[serde(default)]
    pub prompt_eval_count: u64,
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
    /// `sha256` of the manifest; clients treat it as the model's identity.
    #[serde(default)]
    pub digest: String,
    /// Not Ollama's: the version of the Ollama a worker found the model on, which a worker
    /// adds to what it announces so gateways without an Ollama can report one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ollama_version: Option<String>,
    /// Details such as family and quantisation.
    #[serde(default)]
    pub details: serde_json::Value,
    /// Not Ollama's: the worker's Ollama's `/api/show` answer for the model (capabilities,
    /// `model_info`, ...), which a gateway without an Ollama passes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show: Option<serde_json::Value>,
}

/// `POST /api/show`, as far as the admin API reads it.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ShowResponse {
    /// Family, parameter size, quantisation.
    #[serde(default)]
    pub details: ModelDetails,
    /// GGUF metadata such as `llama.context_length`.
    #[serde(default)]
    pub model_info: serde_json::Map<String, serde_json::Value>,
    /// `completion`, `tools`, `thinking`, `vision`, `embedding`, ...
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl ShowResponse {
    /// The context length the model was trained for, from `<architecture>.context_length`.
    pub fn context_length(&self) -> Option<u64> {
        let architecture = self.model_info.get("general.architecture")?.as_str()?;
        self.model_info
            .get(&format!("{architecture}.context_length"))?
            .as_u64()
    }
}

/// The `details` of a model in `/api/tags` and `/api/show`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ModelDetails {
    /// `llama`, `qwen3`, ...
    #[serde(default)]
    pub family: Option<String>,
    /// `8.0B`, ...
    #[serde(default)]
    pub parameter_size: Option<String>,
    /// `Q4_K_M`, ...
    #[serde(default)]
    pub quantization_level: Option<String>,
}

/// Ollama's error body, `{"error":"..."}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// The message.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_length_is_read_under_the_model_architecture() {
        let show: ShowResponse = serde_json::from_str(
            r#"{"details": {"family": "qwen3"}, "capabilities": ["completion"],
                "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960,
                               "llama.context_length": 1}}"#,
        )
        .unwrap();
        assert_eq!(show.context_length(), Some(40960));
        assert_eq!(show.details.family.as_deref(), Some("qwen3"));
        assert_eq!(ShowResponse::default().context_length(), None);
    }
}
