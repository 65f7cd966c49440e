//! A Responses request, validated and mapped to Ollama's native `/api/chat` body.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::openai::messages::image_data;
use crate::openai::request::{
    RequestError, Sampling, ServiceTier, options, serde_error, service_tier, think,
};

/// A validated Responses request.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    /// The model name as the client sent it.
    pub model: String,
    /// Whether the client wants SSE events.
    pub stream: bool,
    /// The service tier the client chose.
    pub service_tier: ServiceTier,
    /// What the response object echoes back.
    pub echo: Echo,
    native: Map<String, Value>,
}

/// Request fields the response object repeats.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// `instructions`.
    pub instructions: Option<String>,
    /// `tools`, as sent.
    pub tools: Vec<Value>,
    /// `tool_choice`, as sent (default `auto`).
    pub tool_choice: Value,
    /// `parallel_tool_calls` (default true).
    pub parallel_tool_calls: bool,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `max_output_tokens`.
    pub max_output_tokens: Option<u32>,
    /// `reasoning.effort`.
    pub effort: Option<String>,
    /// `text.format`, as sent.
    pub text_format: Value,
    /// `metadata`, as sent.
    pub metadata: Value,
}

#[derive(Deserialize)]
struct RawRequest {
    model: String,
    instructions: Option<String>,
    #[serde(default)]
    input: Value,
    stream: Option<bool>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_output_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    reasoning: Option<Reasoning>,
    text: Option<Text>,
    previous_response_id: Option<String>,
    service_tier: Option<String>,
    metadata: Option<Value>,
    keep_alive: Option<Value>,
}

#[derive(Deserialize)]
struct Reasoning {
    effort: Option<String>,
}

#[derive(Deserialize)]
struct Text {
    format: Option<Value>,
}

impl ResponsesRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let raw: RawRequest = serde_path_to_error::deserialize(&mut de).map_err(serde_error)?;
        if raw.previous_response_id.is_some() {
            return Err(RequestError::new(
                "previous_response_id",
                "Seadragon does not store responses, so previous_response_id is not supported: \
                 send the whole conversation in 'input' (and 'store': false).",
            ));
        }
        if raw.model.trim().is_empty() {
            return Err(RequestError::new(
                "model",
                "you must provide a model parameter",
            ));
        }
        if raw.max_output_tokens == Some(0) {
            return Err(RequestError::new(
                "max_output_tokens",
                "max_output_tokens must be at least 1",
            ));
        }
        let mut messages = Vec::new();
        if let Some(instructions) = raw.instructions.as_ref().filter(|i| !i.is_empty()) {
            messages.push(json!({"role": "system", "content": instructions}));
        }
        input(raw.input, &mut messages)?;
        if messages.is_empty() {
            return Err(RequestError::new("input", "input must not be empty"));
        }
        let mut native = Map::new();
        native.insert("messages".into(), Value::Array(messages));
        native.insert("stream".into(), Value::Bool(true));
        let sampling = Sampling {
            max_tokens: raw.max_output_tokens,
            temperature: raw.temperature,
            top_p: raw.top_p,
            seed: None,
            frequency_penalty: None,
            presence_penalty: None,
            stop: None,
        };
        let options = options(Map::new(), &sampling)?;
        if !options.is_empty() {
            native.insert("options".into(), Value::Object(options));
        }
        let tools_sent = raw.tools.clone().unwrap_or_default();
        let disabled = raw.tool_choice.as_ref().and_then(Value::as_str) == Some("none");
        let tools = tools(&tools_sent)?;
        if !tools.is_empty() && !disabled {
            native.insert("tools".into(), Value::Array(tools));
        }
        let text_format = raw.text.and_then(|t| t.format).unwrap_or(Value::Null);
        if let Some(format) = format(&text_format)? {
            native.insert("format".into(), format);
        }
        let effort = raw.reasoning.and_then(|r| r.effort);
        if let Some(level) = effort.as_deref().map(think).transpose()? {
            native.insert("think".into(), level);
        }
        if let Some(keep_alive) = raw.keep_alive.filter(|v| !v.is_null()) {
            native.insert("keep_alive".into(), keep_alive);
        }
        Ok(Self {
            model: raw.model,
            stream: raw.stream.unwrap_or(false),
            service_tier: service_tier(raw.service_tier.as_deref(), None)?,
            echo: Echo {
                instructions: raw.instructions,
                tools: tools_sent,
                tool_choice: raw.tool_choice.unwrap_or_else(|| json!("auto")),
                parallel_tool_calls: raw.parallel_tool_calls.unwrap_or(true),
                temperature: raw.temperature,
                top_p: raw.top_p,
                max_output_tokens: raw.max_output_tokens,
                effort,
                text_format,
                metadata: raw.metadata.unwrap_or_else(|| json!({})),
            },
            native,
        })
    }

    /// The native `/api/chat` body for the resolved model, always streaming.
    pub fn native_body(&self, model: &str) -> Result<Box<RawValue>, serde_json::Error> {
        let mut body = self.native.clone();
        body.insert("model".into(), Value::String(model.to_owned()));
        serde_json::value::to_raw_value(&body)
    }
}

/// `input` as native messages: a string is one user message; items are messages,
/// function calls (joined onto the assistant turn they belong to) and their outputs.
fn input(input: Value, messages: &mut Vec<Value>) -> Result<(), RequestError> {
    let items = match input {
        Value::Null => return Ok(()),
        Value::String(text) => {
            messages.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Value::Array(items) => items,
        _ => {
            return Err(RequestError::new(
                "input",
                "input must be a string or a list of items",
            ));
        }
    };
    let mut call_names: Vec<(String, String)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let param = |field: &str| format!("input[{i}]{field}");
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => messages.push(message(&item, &param(""))?),
            "function_call" => {
                let name = str_field(&item, "name");
                let call_id = str_field(&item, "call_id");
                let arguments = match item.get("arguments") {
                    Some(Value::String(s)) if !s.trim().is_empty() => serde_json::from_str(s)
                        .map_err(|_| {
                            RequestError::new(
                                param(".arguments"),
                                "arguments must be a JSON object encoded as a string",
                            )
                        })?,
                    Some(Value::Object(o)) => Value::Object(o.clone()),
                    _ => json!({}),
                };
                call_names.push((call_id.clone(), name.clone()));
                let call =
                    json!({"id": call_id, "function": {"name": name, "arguments": arguments}});
                // Calls of one turn follow each other: they join the assistant message before.
                match messages.last_mut() {
                    Some(last) if last["role"] == "assistant" => {
                        if let Some(calls) =
                            last.get_mut("tool_calls").and_then(Value::as_array_mut)
                        {
                            calls.push(call);
                        } else {
                            last["tool_calls"] = json!([call]);
                        }
                    }
                    _ => messages
                        .push(json!({"role": "assistant", "content": "", "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let call_id = str_field(&item, "call_id");
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => text_of(other),
                    None => String::new(),
                };
                let mut tool = json!({"role": "tool", "content": output, "tool_call_id": call_id});
                if let Some((_, name)) = call_names.iter().find(|(id, _)| *id == call_id) {
                    tool["tool_name"] = json!(name);
                }
                messages.push(tool);
            }
            // Earlier reasoning is the model's own scratch work; it is not replayed.
            "reasoning" => {}
            other => {
                return Err(RequestError::new(
                    param(".type"),
                    format!(
                        "unsupported input item type '{other}': use message, function_call or function_call_output"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn str_field(item: &Value, key: &str) -> String {
    item.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The text of `input_text`/`output_text` parts (or a string).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn message(item: &Value, param: &str) -> Result<Value, RequestError> {
    let role = match item.get("role").and_then(Value::as_str).unwrap_or("user") {
        "user" => "user",
        "assistant" => "assistant",
        "system" | "developer" => "system",
        other => {
            return Err(RequestError::new(
                format!("{param}.role"),
                format!("unsupported role '{other}'"),
            ));
        }
    };
    let content = item.get("content").cloned().unwrap_or(Value::Null);
    let mut images = Vec::new();
    if let Value::Array(parts) = &content {
        for (k, part) in parts.iter().enumerate() {
            let part_param = format!("{param}.content[{k}]");
            match part.get("type").and_then(Value::as_str).unwrap_or_default() {
                "input_text" | "output_text" | "text" | "refusal" => {}
                "input_image" => {
                    let url = part.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                        RequestError::new(format!("{part_param}.image_url"), "an input_image needs an image_url data URL (file ids are not supported)")
                    })?;
                    images.push(image_data(url, &part_param)?);
                }
                other => {
                    return Err(RequestError::new(
                        format!("{part_param}.type"),
                        format!(
                            "unsupported content part type '{other}': use input_text or input_image"
                        ),
                    ));
                }
            }
        }
    }
    let mut native = json!({"role": role, "content": text_of(&content)});
    if !images.is_empty() {
        native["images"] = json!(images);
    }
    Ok(native)
}

/// Function tools in Ollama's shape. Tool types Ollama cannot run (web search, ...) are left
/// out rather than refused, so an agent that always offers them still works.
fn tools(tools: &[Value]) -> Result<Vec<Value>, RequestError> {
    let mut native = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            continue;
        }
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            return Err(RequestError::new(
                format!("tools[{i}].name"),
                "a function tool needs a name",
            ));
        }
        let mut function = Map::new();
        function.insert("name".into(), json!(name));
        if let Some(d) = tool.get("description").filter(|d| !d.is_null()) {
            function.insert("description".into(), d.clone());
        }
        if let Some(p) = tool.get("parameters").filter(|p| !p.is_null()) {
            function.insert("parameters".into(), p.clone());
        }
        native.push(json!({"type": "function", "function": function}));
    }
    Ok(native)
}

/// `text.format` as Ollama's `format`.
fn format(format: &Value) -> Result<Option<Value>, RequestError> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!("json"))),
        Some("json_schema") => match format.get("schema") {
            Some(schema @ Value::Object(_)) => Ok(Some(schema.clone())),
            _ => Err(RequestError::new(
                "text.format.schema",
                "json_schema needs a schema object",
            )),
        },
        Some(other) => Err(RequestError::new(
            "text.format.type",
            format!("unsupported text format '{other}'"),
        )),
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
