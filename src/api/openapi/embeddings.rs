//! Schemas of `POST /v1/embeddings`, for the OpenAPI document only.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};

/// Floats, or with `encoding_format: "base64"` a base64 string of little-endian float32.
fn vector() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Number)))
        .item(ObjectBuilder::new().schema_type(Type::String))
}

/// An embeddings request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"model": "nomic-embed-text", "input": ["function foo() { return 1; }", "class Bar {}"]}))]
pub struct EmbeddingRequest {
    /// An installed embedding model, an alias, or `default`.
    pub model: String,
    /// One string, or a list of strings (token arrays are not supported).
    pub input: EmbeddingInput,
    /// Shorter vectors, for models that support it.
    #[schema(minimum = 1, maximum = 4_294_967_295_u64, format = Int64)]
    pub dimensions: Option<u32>,
    /// `float` (default) or `base64` (little-endian float32).
    pub encoding_format: Option<EncodingFormat>,
}

/// What to embed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts, one vector each, in this order.
    Many(Vec<String>),
}

/// How the vectors are written.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON numbers.
    Float,
    /// A base64 string of little-endian float32.
    Base64,
}

/// One vector.
#[derive(Debug, Serialize, ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    /// Position of its input.
    pub index: u32,
    /// The vector: floats, or a base64 string with `encoding_format: "base64"`.
    #[schema(schema_with = vector)]
    pub embedding: serde_json::Value,
}

/// Token counts of an embeddings request.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingUsage {
    /// Tokens of every input.
    pub prompt_tokens: u64,
    /// The same number.
    pub total_tokens: u64,
}

/// `{"object":"list","data":[...]}`, ordered by `index`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingList {
    /// Always `list`.
    pub object: String,
    /// One vector per input.
    pub data: Vec<Embedding>,
    /// The model as requested.
    pub model: String,
    /// Token counts.
    pub usage: EmbeddingUsage,
}
