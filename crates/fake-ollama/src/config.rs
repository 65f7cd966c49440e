//! The fake's models and knobs: what it has installed, how many generations it runs at once,
//! how fast it answers and whether it records what it received.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use serde_json::{Value, json};

/// `modified_at` carries the server's local offset, unlike the UTC `created_at` of chat objects.
pub(crate) const MODIFIED_AT: &str = "2025-05-04T17:37:44.706015396-07:00";

/// One installed model, as `/api/tags` and `/api/show` describe it.
#[derive(Debug, Clone)]
pub struct FakeModel {
    /// The installed name, with its tag (`llama3.2:latest`).
    pub name: String,
    /// Ollama's capability names: `completion`, `tools`, `thinking`, `vision`, `embedding`,
    /// `insert` (fill-in-the-middle).
    pub capabilities: Vec<String>,
    /// `details.family`, also the prefix of `model_info`'s keys.
    pub family: String,
    /// `details.parameter_size`, e.g. `8.0B`.
    pub parameter_size: String,
    /// `details.quantization_level`, e.g. `Q4_K_M`.
    pub quantization_level: String,
    /// `model_info["<family>.context_length"]`.
    pub context_length: u64,
}

impl FakeModel {
    /// A llama-family 8B model in Q4_K_M with an 8,192-token context.
    pub fn new(name: &str, capabilities: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            family: "llama".to_owned(),
            parameter_size: "8.0B".to_owned(),
            quantization_level: "Q4_K_M".to_owned(),
            context_length: 8192,
        }
    }

    pub(crate) fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    pub(crate) fn details(&self) -> Value {
        json!({"parent_model": "", "format": "gguf", "family": self.family,
               "families": [self.family], "parameter_size": self.parameter_size,
               "quantization_level": self.quantization_level})
    }

    /// Clients treat the digest as the model's identity, so it depends on the name alone.
    fn hash(&self, salt: u8) -> u64 {
        let mut hasher = DefaultHasher::new();
        (salt, &self.name).hash(&mut hasher);
        hasher.finish()
    }

    pub(crate) fn tags_entry(&self) -> Value {
        let digest: String = (0..4).map(|i| format!("{:016x}", self.hash(i))).collect();
        json!({"name": self.name, "model": self.name, "modified_at": MODIFIED_AT,
               "size": 1_000_000_000 + self.hash(4) % 4_000_000_000, "digest": digest,
               "details": self.details()})
    }
}

/// How the fake behaves; `Default` gives one model per capability mix a gateway cares about.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// What `/api/tags` lists and generations may use.
    pub models: Vec<FakeModel>,
    /// `OLLAMA_NUM_PARALLEL`: generations that may run at once.
    pub parallel: usize,
    /// `OLLAMA_MAX_QUEUE`: requests that may wait for a slot; one more gets a 503.
    pub max_queue: usize,
    /// Model load plus prompt processing: nothing, not even headers, is sent meanwhile.
    /// [`crate::FakeOllama::set_timing`] changes it later.
    pub first_token_delay: Duration,
    /// Between two objects of a generation.
    pub token_delay: Duration,
    /// What `/api/version` reports.
    pub version: &'static str,
    /// Keep request bodies and prompts for the accessors of [`crate::FakeOllama`]. A benchmark
    /// or a long-running fake turns it off, so memory does not grow with every request.
    pub record: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            models: vec![
                FakeModel::new("llama3.2:latest", &["completion", "tools"]),
                FakeModel::new("qwen3:8b", &["completion", "tools", "thinking"]),
                FakeModel::new("llava:7b", &["completion", "vision"]),
                FakeModel::new("all-minilm:latest", &["embedding"]),
            ],
            parallel: 1,
            max_queue: 512,
            first_token_delay: Duration::ZERO,
            token_delay: Duration::from_millis(1),
            version: "0.33.0",
            record: true,
        }
    }
}
