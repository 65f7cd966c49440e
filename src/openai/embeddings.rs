//! `/v1/embeddings` ⇄ Ollama's native `/api/embed`: a string or a list of strings in, one
//! vector per input out, in input order, as float arrays or (`encoding_format: "base64"`, the
//! Python SDK's default) base64 of little-endian float32.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::Usage;
use super::request::{RequestError, ServiceTier, serde_error, service_tier};

/// A validated embeddings request.
#[derive(Debug, Clone)]
pub struct EmbeddingRequest {
    /// The model name as the client sent it.
    pub model: String,
    /// Whether vectors are written as base64.
    pub base64: bool,
    /// The service tier the client chose.
    pub service_tier: ServiceTier,
    native: Map<String, Value>,
}

#[derive(Deserialize)]
struct RawRequest {
    model: String,
    input: Value,
    dimensions: Option<u32>,
    encoding_format: Option<String>,
    service_tier: Option<String>,
    priority: Option<i64>,
    truncate: Option<bool>,
    keep_alive: Option<Value>,
}

impl EmbeddingRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let raw: RawRequest = serde_path_to_error::deserialize(&mut de).map_err(serde_error)?;
        if raw.model.trim().is_empty() {
            return Err(RequestError::new(
                "model",
                "you must provide a model parameter",
            ));
        }
        let inputs = inputs(raw.input)?;
        let base64 = match raw.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(RequestError::new(
                    "encoding_format",
                    format!(
                        "Invalid value for 'encoding_format' = {other}. Supported values: ['float', 'base64']."
                    ),
                ));
            }
        };
        let mut native = Map::new();
        native.insert("input".into(), json!(inputs));
        if let Some(dimensions) = raw.dimensions {
            if dimensions == 0 {
                return Err(RequestError::new(
                    "dimensions",
                    "dimensions must be at least 1",
                ));
            }
            native.insert("dimensions".into(), json!(dimensions));
        }
        if let Some(truncate) = raw.truncate {
            native.insert("truncate".into(), json!(truncate));
        }
        if let Some(keep_alive) = raw.keep_alive.filter(|v| !v.is_null()) {
            native.insert("keep_alive".into(), keep_alive);
        }
        Ok(Self {
            model: raw.model,
            base64,
            service_tier: service_tier(raw.service_tier.as_deref(), raw.priority)?,
            native,
        })
    }

    /// The native `/api/embed` body for the resolved model.
    pub fn native_body(&self, model: &str) -> Result<Box<RawValue>, serde_json::Error> {
        let mut body = self.native.clone();
        body.insert("model".into(), Value::String(model.to_owned()));
        serde_json::value::to_raw_value(&body)
    }
}

/// The inputs as strings. Token arrays are OpenAI-specific (its tokenizer's ids), so they
/// mean nothing to an Ollama model and are refused.
fn inputs(input: Value) -> Result<Vec<String>, RequestError> {
    let invalid = |message: &str| RequestError::new("input", message);
    match input {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) if items.is_empty() => Err(invalid("input must not be empty")),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s),
                _ => Err(RequestError::new(
                    format!("input[{i}]"),
                    "each input must be a string (token arrays are not supported)",
                )),
            })
            .collect(),
        _ => Err(invalid("input must be a string or an array of strings")),
    }
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Value,
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The `list` of embeddings, ordered by `index`.
pub fn render(model: &str, vectors: Vec<Vec<f32>>, base64: bool, usage: Usage) -> String {
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| Item {
            object: "embedding",
            index,
            embedding: if base64 {
                Value::String(encode(&vector))
            } else {
                json!(vector)
            },
        })
        .collect();
    serde_json::to_string(&List {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: usage.prompt_tokens,
            total_tokens: usage.prompt_tokens,
        },
    })
    // Plain structs with string keys: serialising cannot fail.
    .unwrap_or_default()
}

/// Little-endian float32 bytes in base64, what OpenAI's SDKs decode.
fn encode(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_lists_become_native_input() {
        let one = EmbeddingRequest::parse(br#"{"model":"e","input":"hi","dimensions":8}"#).unwrap();
        let body: Value = serde_json::from_str(one.native_body("e:latest").unwrap().get()).unwrap();
        assert_eq!(
            body,
            json!({"input": ["hi"], "dimensions": 8, "model": "e:latest"})
        );
        assert!(EmbeddingRequest::parse(br#"{"model":"e","input":[]}"#).is_err());
        assert!(EmbeddingRequest::parse(br#"{"model":"e","input":[[1,2]]}"#).is_err());
        assert!(
            EmbeddingRequest::parse(br#"{"model":"e","input":"a","encoding_format":"x"}"#).is_err()
        );
    }

    #[test]
    fn base64_is_little_endian_float32() {
        let json = render("e", vec![vec![1.0, -0.5]], true, Usage::new(3, 0));
        let value: Value = serde_json::from_str(&json).unwrap();
        let encoded = value["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
        assert_eq!(
            value["usage"],
            json!({"prompt_tokens": 3, "total_tokens": 3})
        );
    }
}
