//! Chat messages, OpenAI → Ollama: roles, text and image parts gathered into one native
//! message, assistant tool calls with their arguments parsed into objects, and tool results
//! named after the call they answer.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::request::RequestError;

#[derive(Deserialize)]
pub(super) struct RawMessage {
    role: String,
    #[serde(default)]
    content: Value,
    name: Option<String>,
    tool_calls: Option<Vec<RawToolCall>>,
    tool_call_id: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
}

#[derive(Deserialize)]
struct RawToolCall {
    id: Option<String>,
    function: RawFunctionCall,
}

#[derive(Deserialize)]
struct RawFunctionCall {
    name: String,
    #[serde(default)]
    arguments: Value,
}

pub(super) fn messages(raw: Vec<RawMessage>) -> Result<Vec<Value>, RequestError> {
    let mut out = Vec::with_capacity(raw.len());
    // Tool results name their function; clients often send only the call id.
    let mut call_names: Vec<(String, String)> = Vec::new();
    for (i, m) in raw.into_iter().enumerate() {
        let param = |field: &str| format!("messages[{i}].{field}");
        let (text, images) = content(m.content, &param("content"))?;
        let mut native = Map::new();
        match m.role.as_str() {
            "system" | "developer" | "user" => {
                let Some(text) = text else {
                    return Err(RequestError::new(param("content"), "content is required"));
                };
                let role = if m.role == "user" { "user" } else { "system" };
                native.insert("role".into(), json!(role));
                native.insert("content".into(), Value::String(text));
            }
            "assistant" => {
                native.insert("role".into(), json!("assistant"));
                native.insert("content".into(), Value::String(text.unwrap_or_default()));
                if let Some(thinking) = m.reasoning_content.or(m.reasoning) {
                    native.insert("thinking".into(), Value::String(thinking));
                }
                let calls = m.tool_calls.unwrap_or_default();
                if !calls.is_empty() {
                    let mut native_calls = Vec::with_capacity(calls.len());
                    for (j, call) in calls.into_iter().enumerate() {
                        let arguments = arguments(call.function.arguments).ok_or_else(|| {
                            RequestError::new(
                                param(&format!("tool_calls[{j}].function.arguments")),
                                "tool call arguments must be a JSON object encoded as a string",
                            )
                        })?;
                        if let Some(id) = &call.id {
                            call_names.push((id.clone(), call.function.name.clone()));
                        }
                        let mut c = json!({"function": {"name": call.function.name, "arguments": arguments}});
                        if let Some(id) = call.id {
                            c["id"] = Value::String(id);
                        }
                        native_calls.push(c);
                    }
                    native.insert("tool_calls".into(), Value::Array(native_calls));
                }
            }
            "tool" => {
                native.insert("role".into(), json!("tool"));
                native.insert("content".into(), Value::String(text.unwrap_or_default()));
                let looked_up = m.tool_call_id.as_ref().and_then(|id| {
                    call_names
                        .iter()
                        .find(|(call_id, _)| call_id == id)
                        .map(|(_, name)| name.clone())
                });
                if let Some(name) = m.name.or(looked_up) {
                    native.insert("tool_name".into(), Value::String(name));
                }
                if let Some(id) = m.tool_call_id {
                    native.insert("tool_call_id".into(), Value::String(id));
                }
            }
            other => {
                return Err(RequestError::new(
                    param("role"),
                    format!(
                        "Invalid value '{other}': expected system, developer, user, assistant or tool"
                    ),
                ));
            }
        }
        if !images.is_empty() {
            native.insert("images".into(), json!(images));
        }
        out.push(Value::Object(native));
    }
    Ok(out)
}

/// A tool call's arguments as the object Ollama wants. OpenAI sends a JSON string.
fn arguments(value: Value) -> Option<Value> {
    match value {
        Value::Null => Some(json!({})),
        Value::String(s) if s.trim().is_empty() => Some(json!({})),
        Value::String(s) => serde_json::from_str::<Value>(&s)
            .ok()
            .filter(Value::is_object),
        Value::Object(o) => Some(Value::Object(o)),
        _ => None,
    }
}

/// Message content: a string, or parts (text and images) gathered into one native message.
/// `None` means the content was null or absent.
fn content(value: Value, param: &str) -> Result<(Option<String>, Vec<String>), RequestError> {
    match value {
        Value::Null => Ok((None, Vec::new())),
        Value::String(s) => Ok((Some(s), Vec::new())),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            let mut images = Vec::new();
            for (k, part) in parts.into_iter().enumerate() {
                let part_param = format!("{param}[{k}]");
                let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
                match kind {
                    "text" => match part.get("text").and_then(Value::as_str) {
                        Some(t) => texts.push(t.to_owned()),
                        None => {
                            return Err(RequestError::new(
                                format!("{part_param}.text"),
                                "a text part needs a string 'text'",
                            ));
                        }
                    },
                    "image_url" => {
                        let url = part.get("image_url").and_then(|u| {
                            u.as_str().or_else(|| u.get("url").and_then(Value::as_str))
                        });
                        let url = url.ok_or_else(|| {
                            RequestError::new(
                                format!("{part_param}.image_url"),
                                "an image part needs image_url.url",
                            )
                        })?;
                        images.push(image_data(url, &part_param)?);
                    }
                    other => {
                        return Err(RequestError::new(
                            format!("{part_param}.type"),
                            format!(
                                "unsupported content part type '{other}': use 'text' or 'image_url'"
                            ),
                        ));
                    }
                }
            }
            Ok((Some(texts.join("\n")), images))
        }
        _ => Err(RequestError::new(
            param,
            "content must be a string or an array of content parts",
        )),
    }
}

/// The base64 payload of a `data:` URL; Ollama takes images only inline.
pub(in crate::openai) fn image_data(url: &str, param: &str) -> Result<String, RequestError> {
    let error = |message: &str| RequestError::new(format!("{param}.image_url.url"), message);
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(error(
            "image URLs are not fetched: send the image inline as a base64 data URL (data:image/png;base64,...)",
        ));
    }
    let (header, payload) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .ok_or_else(|| error("expected a data URL: data:image/<type>;base64,<data>"))?;
    let mime = header
        .strip_suffix(";base64")
        .ok_or_else(|| error("the data URL must be base64-encoded"))?;
    if !(mime.is_empty() || mime.starts_with("image/")) {
        return Err(error("the data URL must hold an image"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|_| error("the image data is not valid base64"))?;
    Ok(payload.to_owned())
}
