//! Schemas of the answers of `POST /v1/chat/completions`, for the OpenAPI document only.
//!
//! Answers are written by `openai::render` with borrowed types, so there is nothing to derive
//! a schema from; these describe the same shapes. The integration tests check real answers
//! against them field by field, so they cannot silently fall behind.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// A JSON `null`, for fields OpenAI clients expect to be present and null.
pub(super) fn always_null() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Null)
}

/// A streamed answer as the OpenAPI document shows it.
pub const STREAM_EXAMPLE: &str = ": queued position=0 tier=pro\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1761498924,\"model\":\"llama3.2\",\"service_tier\":\"default\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1761498924,\"model\":\"llama3.2\",\"service_tier\":\"default\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

/// The only tool type.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FunctionType {
    /// A function.
    Function,
}

/// The `service_tier` an answer ran at.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTierUsed {
    /// The key's tier.
    Default,
    /// One level below it.
    Flex,
}

/// A complete answer (`stream: false`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-...`
    pub id: String,
    /// Always `chat.completion`.
    pub object: CompletionObject,
    /// Unix seconds.
    pub created: u64,
    /// The model as the request named it.
    pub model: String,
    /// The tier the job ran at.
    pub service_tier: ServiceTierUsed,
    /// Exactly one choice.
    pub choices: Vec<CompletionChoice>,
    /// Token counts.
    pub usage: Usage,
}

/// The `object` of a complete answer.
#[derive(Debug, Serialize, ToSchema)]
pub enum CompletionObject {
    /// The only value.
    #[serde(rename = "chat.completion")]
    ChatCompletion,
}

/// The `object` of a stream chunk.
#[derive(Debug, Serialize, ToSchema)]
pub enum ChunkObject {
    /// The only value.
    #[serde(rename = "chat.completion.chunk")]
    ChatCompletionChunk,
}

/// The role of an answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AssistantRole {
    /// The only value.
    Assistant,
}

/// The one choice of a complete answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChoice {
    /// Always 0.
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
    /// Always null.
    #[schema(schema_with = always_null)]
    pub logprobs: (),
    /// Why generation stopped.
    pub finish_reason: FinishReason,
}

/// The assistant's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: AssistantRole,
    /// The text; null when the answer is only tool calls.
    #[schema(required = true)]
    pub content: Option<String>,
    /// Reasoning of thinking models (also sent as `reasoning`).
    pub reasoning_content: Option<String>,
    /// Same as `reasoning_content`, for clients that read this name.
    pub reasoning: Option<String>,
    /// Calls the model wants made.
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// A tool call.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolCall {
    /// Position among the calls of the answer; present in stream chunks only.
    pub index: Option<u32>,
    /// `call_...`, unique within the answer.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionType,
    /// The call.
    pub function: FunctionCall,
}

/// The function part of a tool call.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments: a JSON object encoded as a string.
    #[schema(example = "{\"city\":\"Tokyo\"}")]
    pub arguments: String,
}

/// Why generation stopped.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token limit.
    Length,
    /// The model called tools.
    ToolCalls,
}

/// Token counts of one answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

/// One `data:` event of a streamed answer. The first carries `role`, content follows in
/// deltas, a chunk with an empty delta carries `finish_reason`, and with `include_usage` a
/// last chunk has `choices: []` and `usage`. Errors after the 200 arrive as
/// `data: {"error": {...}}` and end the stream; `: ...` lines are keep-alive comments.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletionChunk {
    /// The same `chatcmpl-...` on every chunk of an answer.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: ChunkObject,
    /// Unix seconds, the same on every chunk.
    pub created: u64,
    /// The model as the request named it.
    pub model: String,
    /// The tier the job ran at.
    pub service_tier: ServiceTierUsed,
    /// One choice, or none in the usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Only in the usage chunk.
    pub usage: Option<Usage>,
}

/// The choice of a chunk.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkChoice {
    /// Always 0.
    pub index: u32,
    /// What this chunk adds.
    pub delta: ChunkDelta,
    /// Null until the finish chunk.
    #[schema(required = true)]
    pub finish_reason: Option<FinishReason>,
}

/// What one chunk adds to the answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkDelta {
    /// `assistant`, on the first chunk only.
    pub role: Option<AssistantRole>,
    /// More text.
    pub content: Option<String>,
    /// More reasoning.
    pub reasoning_content: Option<String>,
    /// Same as `reasoning_content`.
    pub reasoning: Option<String>,
    /// Whole tool calls (never fragments), each with `index` and `id`.
    pub tool_calls: Option<Vec<ToolCall>>,
}
