//! Schemas of `POST /v1/completions`, for the OpenAPI document only (answers are written by
//! `openai::completions` with borrowed types).

use serde::Serialize;
use utoipa::ToSchema;

/// A text completion request: a prompt (with fill-in-the-middle tokens already in it, or
/// with a `suffix`) continued by the model.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"model": "qwen2.5-coder:1.5b", "prompt": "def add(a, b):\n    return ",
    "suffix": "\n\nprint(add(1, 2))\n", "max_tokens": 64, "stop": ["\n\n"]}))]
pub struct TextCompletionRequest {
    /// An installed model, an alias, or `default`.
    pub model: String,
    /// The prompt, sent to the model exactly as written when there is no `suffix` (default
    /// empty).
    pub prompt: Option<Prompt>,
    /// Text after the insertion point: the model's template builds the fill-in-the-middle prompt.
    pub suffix: Option<String>,
    /// Stream `text_completion` chunks as server-sent events.
    pub stream: Option<bool>,
    /// Most tokens to generate.
    #[schema(minimum = 1, maximum = 4_294_967_295_u64, format = Int64)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    pub top_p: Option<f64>,
    /// Seed for reproducible sampling.
    pub seed: Option<i64>,
    /// Strings that end generation: one, or a list.
    pub stop: Option<super::chat_request::Stop>,
    /// Must be false or absent: the prompt is not repeated.
    pub echo: Option<bool>,
}

/// The prompt: a string, or a list holding one (several prompts per request are refused).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Prompt {
    /// The prompt.
    One(String),
    /// A list with one prompt.
    Many(Vec<String>),
}

/// One choice of a text completion.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextCompletionChoice {
    /// Generated text (a part of it in a streamed chunk).
    pub text: String,
    /// Always 0.
    pub index: u32,
    /// Always null.
    #[schema(schema_with = super::chat_response::always_null)]
    pub logprobs: Option<()>,
    /// `stop` or `length`; null on streamed chunks before the last.
    #[schema(required = true)]
    pub finish_reason: Option<String>,
}

/// A `text_completion` object: the whole answer, or one streamed chunk (whose `usage` is
/// absent, and whose `choices` is empty in the final usage chunk).
#[derive(Debug, Serialize, ToSchema)]
pub struct TextCompletion {
    /// `cmpl-...`.
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model as requested.
    pub model: String,
    /// The choice.
    pub choices: Vec<TextCompletionChoice>,
    /// Token counts.
    pub usage: Option<super::chat_response::Usage>,
}
