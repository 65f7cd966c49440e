//! The objects of Ollama's NDJSON answers (`api.ChatResponse`, `api.Message`, `api.ToolCall`)
//! with Ollama's field order and `omitempty` rules, since clients parse them strictly.

use std::sync::Arc;
use std::time::SystemTime;

use rand::RngExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::wire::rfc3339_nano;

/// One `api.ChatResponse`, fields in Ollama's order; zero metrics are absent (`omitempty`).
#[derive(Debug, Default, Serialize)]
pub(crate) struct ChatObject {
    /// Shared with every object of the generation: one allocation per answer, not per token.
    pub(crate) model: Arc<str>,
    pub(crate) created_at: String,
    pub(crate) message: Message,
    pub(crate) done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) done_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) total_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) load_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) prompt_eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) prompt_eval_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) eval_duration: u64,
}

impl ChatObject {
    pub(crate) fn new(model: &Arc<str>, message: Message) -> Self {
        let created_at = rfc3339_nano(SystemTime::now());
        Self {
            model: Arc::clone(model),
            created_at,
            message,
            ..Self::default()
        }
    }
}

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Message {
    pub(crate) role: &'static str,
    pub(crate) content: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) thinking: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tool_calls: Vec<ToolCall>,
}

impl Message {
    /// An answer's text alone.
    pub(crate) fn text(content: String) -> Self {
        Self {
            role: "assistant",
            content,
            ..Self::default()
        }
    }

    pub(crate) fn new(content: &str, thinking: &str, tool_calls: Vec<ToolCall>) -> Self {
        let (content, thinking) = (content.to_owned(), thinking.to_owned());
        Self {
            role: "assistant",
            content,
            thinking,
            tool_calls,
        }
    }
}

/// A whole call in one object, with `arguments` as an object.
#[derive(Debug, Serialize)]
pub(crate) struct ToolCall {
    pub(crate) id: String,
    pub(crate) function: ToolFunction,
}

#[derive(Debug, Serialize)]
pub(crate) struct ToolFunction {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) arguments: Value,
}

impl ToolCall {
    /// Always `index: 0`, so `#tools2` reproduces the repeat bug of several Ollama parsers.
    pub(crate) fn new(name: &str, city: &str) -> Self {
        // `call_` plus 8 characters of `[a-z0-9]`, like Ollama since v0.12.10.
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let pick = |_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]);
        let id = format!("call_{}", (0..8).map(pick).collect::<String>());
        let (name, arguments) = (name.to_owned(), json!({"city": city}));
        Self {
            id,
            function: ToolFunction {
                index: 0,
                name,
                arguments,
            },
        }
    }
}
