//! Validates a client's `/v1/chat/completions` body and maps it to Ollama's native `/api/chat`
//! request, before anything is queued.
//!
//! Where Ollama's own `/v1` layer loses information, this mapping keeps it: omitted sampling
//! settings stay unset (the model's defaults apply), `max_completion_tokens` is honoured, content
//! parts of one message stay one message, and `tool_choice: "none"` really disables tools.

pub use super::service_tier::ServiceTier;
pub(in crate::openai) use super::service_tier::service_tier;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::messages;

/// A client mistake in the request body, reported as a 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// What is wrong, in words a client developer can act on.
    pub message: String,
    /// The offending parameter (`messages[0].content`), when there is one.
    pub param: Option<String>,
}

impl RequestError {
    pub(in crate::openai) fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
        }
    }
}

/// A validated chat request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The model name as the client sent it.
    pub model: String,
    /// Whether the client wants SSE.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The service tier the client chose.
    pub service_tier: ServiceTier,
    /// The native body without `model`.
    native: Map<String, Value>,
}

#[derive(Deserialize)]
struct RawRequest {
    model: String,
    messages: Vec<messages::RawMessage>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    stop: Option<Stop>,
    response_format: Option<ResponseFormat>,
    tools: Option<Vec<RawTool>>,
    tool_choice: Option<Value>,
    reasoning_effort: Option<String>,
    reasoning: Option<Reasoning>,
    service_tier: Option<String>,
    priority: Option<i64>,
    n: Option<u32>,
    options: Option<Map<String, Value>>,
    keep_alive: Option<Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Reasoning {
    effort: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(in crate::openai) enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchema },
}

#[derive(Deserialize)]
pub(super) struct JsonSchema {
    /// Ollama has no use for the name; it is read so a wrong type is refused as OpenAI does.
    #[serde(rename = "name", default)]
    pub(super) _name: Option<String>,
    pub(super) schema: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
pub(super) struct RawTool {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) function: RawToolFunction,
}

#[derive(Deserialize)]
pub(super) struct RawToolFunction {
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) parameters: Option<Value>,
}

impl ChatRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let raw: RawRequest = serde_path_to_error::deserialize(&mut de).map_err(serde_error)?;
        Self::from_raw(raw)
    }

    /// The native `/api/chat` body for the resolved model, always streaming.
    pub fn native_body(&self, model: &str) -> Result<Box<RawValue>, serde_json::Error> {
        let mut body = self.native.clone();
        body.insert("model".into(), Value::String(model.to_owned()));
        serde_json::value::to_raw_value(&body)
    }

    fn from_raw(raw: RawRequest) -> Result<Self, RequestError> {
        if raw.model.trim().is_empty() {
            return Err(RequestError::new(
                "model",
                "you must provide a model parameter",
            ));
        }
        if raw.messages.is_empty() {
            return Err(RequestError::new(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            ));
        }
        if raw.n.is_some_and(|n| n != 1) {
            return Err(RequestError::new("n", "only n = 1 is supported"));
        }
        let service_tier = service_tier(raw.service_tier.as_deref(), raw.priority)?;
        let mut native = Map::new();
        native.insert(
            "messages".into(),
            Value::Array(messages::messages(raw.messages)?),
        );
        native.insert("stream".into(), Value::Bool(true));
        let options = options(
            raw.options.unwrap_or_default(),
            &Sampling {
                max_tokens: token_limit(raw.max_completion_tokens, raw.max_tokens)?,
                temperature: raw.temperature,
                top_p: raw.top_p,
                seed: raw.seed,
                frequency_penalty: raw.frequency_penalty,
                presence_penalty: raw.presence_penalty,
                stop: raw.stop,
            },
        )?;
        if !options.is_empty() {
            native.insert("options".into(), Value::Object(options));
        }
        let tools_disabled = raw.tool_choice.as_ref().and_then(Value::as_str) == Some("none");
        if let Some(tools) = raw.tools.filter(|t| !t.is_empty() && !tools_disabled) {
            native.insert("tools".into(), Value::Array(self::tools(tools)?));
        }
        if let Some(format) = raw.response_format.map(format).transpose()?.flatten() {
            native.insert("format".into(), format);
        }
        let effort = raw
            .reasoning_effort
            .or(raw.reasoning.and_then(|r| r.effort));
        if let Some(think) = effort.as_deref().map(think).transpose()? {
            native.insert("think".into(), think);
        }
        if let Some(keep_alive) = raw.keep_alive.filter(|v| !v.is_null()) {
            native.insert("keep_alive".into(), keep_alive);
        }
        Ok(Self {
            model: raw.model,
            stream: raw.stream.unwrap_or(false),
            include_usage: raw
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            service_tier,
            native,
        })
    }
}

/// Turns serde's message and path into our error, naming the parameter the way OpenAI does.
pub(in crate::openai) fn serde_error(
    e: serde_path_to_error::Error<serde_json::Error>,
) -> RequestError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return RequestError {
            message: format!("We could not parse the JSON body of your request: {inner}"),
            param: None,
        };
    }
    let text = inner.to_string();
    // serde reports a missing field at the enclosing path; name the field itself.
    let missing = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let param = match missing {
        Some(field) if path == "." => field.to_owned(),
        Some(field) => format!("{path}.{field}"),
        None => path,
    };
    let message = match missing {
        Some(_) => format!("Missing required parameter: '{param}'."),
        None => format!("Invalid type for '{param}': {}", strip_position(&text)),
    };
    RequestError {
        message,
        param: Some(param),
    }
}

fn strip_position(text: &str) -> &str {
    text.split(" at line ").next().unwrap_or(text)
}

pub(in crate::openai) struct Sampling {
    pub(in crate::openai) max_tokens: Option<u32>,
    pub(in crate::openai) temperature: Option<f64>,
    pub(in crate::openai) top_p: Option<f64>,
    pub(in crate::openai) seed: Option<i64>,
    pub(in crate::openai) frequency_penalty: Option<f64>,
    pub(in crate::openai) presence_penalty: Option<f64>,
    pub(in crate::openai) stop: Option<Stop>,
}

/// The answer's token limit: `max_completion_tokens`, else the older `max_tokens`. Each must be
/// at least 1 when given, even the one that does not apply.
pub(super) fn token_limit(
    max_completion_tokens: Option<u32>,
    max_tokens: Option<u32>,
) -> Result<Option<u32>, RequestError> {
    for (param, value) in [
        ("max_completion_tokens", max_completion_tokens),
        ("max_tokens", max_tokens),
    ] {
        if value == Some(0) {
            return Err(RequestError::new(
                param,
                format!("{param} must be at least 1"),
            ));
        }
    }
    Ok(max_completion_tokens.or(max_tokens))
}

/// Ollama's `options`: the client's own first, then the OpenAI fields it set explicitly.
pub(in crate::openai) fn options(
    mut options: Map<String, Value>,
    s: &Sampling,
) -> Result<Map<String, Value>, RequestError> {
    if let Some(max) = s.max_tokens {
        options.insert("num_predict".into(), json!(max));
    }
    if let Some(t) = s.temperature {
        in_range("temperature", t, 0.0, 2.0)?;
        options.insert("temperature".into(), json!(t));
    }
    if let Some(p) = s.top_p {
        in_range("top_p", p, 0.0, 1.0)?;
        options.insert("top_p".into(), json!(p));
    }
    if let Some(seed) = s.seed {
        options.insert("seed".into(), json!(seed));
    }
    if let Some(f) = s.frequency_penalty {
        in_range("frequency_penalty", f, -2.0, 2.0)?;
        options.insert("frequency_penalty".into(), json!(f));
    }
    if let Some(p) = s.presence_penalty {
        in_range("presence_penalty", p, -2.0, 2.0)?;
        options.insert("presence_penalty".into(), json!(p));
    }
    match &s.stop {
        Some(Stop::One(one)) => {
            options.insert("stop".into(), json!([one]));
        }
        Some(Stop::Many(many)) if !many.is_empty() => {
            options.insert("stop".into(), json!(many));
        }
        _ => {}
    }
    Ok(options)
}

fn in_range(param: &str, value: f64, min: f64, max: f64) -> Result<(), RequestError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RequestError::new(
            param,
            format!("Invalid '{param}': {value} is outside [{min}, {max}]"),
        ))
    }
}

pub(super) fn tools(tools: Vec<RawTool>) -> Result<Vec<Value>, RequestError> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(RequestError::new(
                    format!("tools[{i}].type"),
                    format!("unsupported tool type '{}': only 'function'", tool.kind),
                ));
            }
            if tool.function.name.is_empty() {
                return Err(RequestError::new(
                    format!("tools[{i}].function.name"),
                    "a tool needs a function name",
                ));
            }
            let mut function = Map::new();
            function.insert("name".into(), Value::String(tool.function.name));
            if let Some(d) = tool.function.description {
                function.insert("description".into(), Value::String(d));
            }
            if let Some(p) = tool.function.parameters {
                function.insert("parameters".into(), p);
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}

pub(in crate::openai) fn format(format: ResponseFormat) -> Result<Option<Value>, RequestError> {
    match format {
        ResponseFormat::Text => Ok(None),
        ResponseFormat::JsonObject => Ok(Some(Value::String("json".into()))),
        ResponseFormat::JsonSchema { json_schema } => json_schema
            .schema
            .map(|s| Some(Value::Object(s)))
            .ok_or_else(|| {
                RequestError::new(
                    "response_format.json_schema.schema",
                    "json_schema needs a schema object",
                )
            }),
    }
}

/// OpenAI's `reasoning_effort` as Ollama's `think` (the mapping of Ollama's own `/v1`).
pub(in crate::openai) fn think(effort: &str) -> Result<Value, RequestError> {
    Ok(match effort {
        "none" => Value::Bool(false),
        "minimal" => json!("low"),
        "low" | "medium" | "high" | "max" => json!(effort),
        "xhigh" | "ultra" => json!("max"),
        other => {
            return Err(RequestError::new(
                "reasoning_effort",
                format!(
                    "Invalid reasoning_effort '{other}': expected none, minimal, low, medium or high"
                ),
            ));
        }
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
