//! Schema of the `POST /v1/chat/completions` body, for the OpenAPI document only.
//!
//! The request is parsed from raw JSON by `openai::request`, which has no type to derive a
//! schema from; this describes what it accepts. Field docs become the schema descriptions.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::chat_response::{FunctionType, ToolCall};

/// The body of a chat request. Unknown fields are accepted and ignored; sampling settings left
/// out stay unset, so the model's own defaults apply.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "model": "llama3.2",
    "messages": [{"role": "user", "content": "Hello"}],
    "stream": true,
    "stream_options": {"include_usage": true}
}))]
pub struct ChatCompletionRequest {
    /// An installed model (`llama3.2` means `llama3.2:latest`, as in Ollama), a configured
    /// alias, or `default` for the model the admins selected. Unknown: 404 `model_not_found`.
    #[schema(min_length = 1)]
    pub model: String,
    /// The conversation; at least one message.
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    /// `true`: server-sent events of `chat.completion.chunk`, then `data: [DONE]`.
    #[schema(default = false)]
    pub stream: Option<bool>,
    /// Stream settings.
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate; `max_completion_tokens` wins when both are set.
    #[schema(minimum = 1, maximum = 4_294_967_295_u64, format = Int64)]
    pub max_tokens: Option<u32>,
    /// Most tokens to generate.
    #[schema(minimum = 1, maximum = 4_294_967_295_u64, format = Int64)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[schema(minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    /// Seed for reproducible sampling.
    pub seed: Option<i64>,
    /// Penalty on tokens by their frequency so far.
    #[schema(minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<f64>,
    /// Penalty on tokens already present.
    #[schema(minimum = -2, maximum = 2)]
    pub presence_penalty: Option<f64>,
    /// Stop sequences.
    pub stop: Option<Stop>,
    /// Constrains the answer to JSON.
    pub response_format: Option<ResponseFormat>,
    /// Functions the model may call.
    pub tools: Option<Vec<Tool>>,
    /// Only `"none"` has an effect: it disables the tools. Other values are accepted.
    pub tool_choice: Option<Value>,
    /// How much thinking models reason (Ollama's `think`); `none` turns it off.
    #[schema(value_type = Option<String>, example = "low")]
    pub reasoning_effort: Option<String>,
    /// `flex` volunteers to wait: the job runs one level below the key's tier. `auto`,
    /// `default`, `priority` and `scale` keep the tier; nothing raises a job above it.
    pub service_tier: Option<ServiceTierName>,
    /// vLLM's convention: a positive value lowers the job like `service_tier: "flex"`.
    pub priority: Option<i64>,
    /// Only 1 is supported.
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
    /// Ollama's own options, passed through (e.g. `num_ctx`).
    pub options: Option<BTreeMap<String, Value>>,
    /// Ollama's `keep_alive`, passed through: how long the model stays loaded (`"5m"`, `0`).
    pub keep_alive: Option<Value>,
}

/// One message of the conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Text, or parts (text and images); may be null on assistant messages with tool calls.
    pub content: Option<MessageContent>,
    /// For `tool` messages: the function's name (looked up from `tool_call_id` when absent).
    pub name: Option<String>,
    /// For `assistant` messages: the calls the model made.
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For `tool` messages: the call this result answers.
    pub tool_call_id: Option<String>,
    /// For `assistant` messages of thinking models: their earlier reasoning.
    pub reasoning_content: Option<String>,
}

/// The author of a message; `developer` is treated as `system`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// Instructions (newer OpenAI name).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// Message content.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Text and image parts, sent to the model as one message.
    Parts(Vec<ContentPart>),
}

/// A part of a message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, inline as a base64 `data:` URL (image URLs are not fetched).
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
}

/// An inline image.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageUrl {
    /// `data:image/png;base64,...`
    #[schema(example = "data:image/png;base64,iVBORw0KGgo=")]
    pub url: String,
}

/// Include a usage chunk at the end of the stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamOptions {
    /// When true, the last chunk before `[DONE]` has `choices: []` and the token counts.
    pub include_usage: Option<bool>,
}

/// One stop sequence or several.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// The format of the answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following a schema.
    JsonSchema {
        /// The schema.
        json_schema: JsonSchema,
    },
}

/// A named JSON schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct JsonSchema {
    /// A name for it (not used by Ollama).
    pub name: Option<String>,
    /// The JSON Schema object the answer must follow.
    pub schema: BTreeMap<String, Value>,
}

/// A function the model may call.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionType,
    /// The function.
    pub function: FunctionDefinition,
}

/// A function's signature.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionDefinition {
    /// Its name.
    #[schema(min_length = 1)]
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Its parameters as a JSON Schema object.
    pub parameters: Option<Value>,
}

/// The `service_tier` values a request may name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTierName {
    /// The key's tier.
    Auto,
    /// The key's tier.
    Default,
    /// One level below the key's tier.
    Flex,
    /// The key's tier (never higher).
    Priority,
    /// The key's tier.
    Scale,
}
