//! A client's native `/api/chat`, `/api/generate` or `/api/embed` body, read as Ollama reads
//! it (unknown fields ignored, `stream` true unless `false`, the legacy `name` for `model`)
//! and turned into the job's body: the same body, with the installed model and, for
//! generation, streaming forced on (the gateway answers in one object itself when asked).

use crate::queue::JobKind;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Which native endpoint the client called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeKind {
    /// `/api/chat`.
    Chat,
    /// `/api/generate`.
    Generate,
    /// `/api/embed`.
    Embed,
    /// `/api/embeddings`, the older one: one `prompt`, one `embedding`.
    LegacyEmbed,
}

impl NativeKind {
    /// The Ollama endpoint a job of this kind runs on (the older embeddings route is served
    /// by `/api/embed`).
    pub fn job_kind(self) -> JobKind {
        match self {
            Self::Chat => JobKind::Chat,
            Self::Generate => JobKind::Generate,
            Self::Embed | Self::LegacyEmbed => JobKind::Embed,
        }
    }

    /// Whether the answer is embeddings, always one object.
    pub fn embeds(self) -> bool {
        matches!(self, Self::Embed | Self::LegacyEmbed)
    }
}

/// A native request, validated the way Ollama validates it before scheduling.
#[derive(Debug, Clone)]
pub struct NativeRequest {
    /// Which endpoint.
    pub kind: NativeKind,
    /// The model name exactly as the client sent it: Ollama echoes it back.
    pub model: String,
    /// Whether the client wants NDJSON (Ollama's default) rather than one object.
    pub stream: bool,
    body: Map<String, Value>,
}

impl NativeRequest {
    /// Parses a body; the error is the message Ollama would send with a 400.
    pub fn parse(kind: NativeKind, body: &[u8]) -> Result<Self, String> {
        if body.is_empty() {
            return Err("missing request body".to_owned());
        }
        let mut body: Map<String, Value> =
            serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let name = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let model = match name("model") {
            model if model.is_empty() => name("name"),
            model => model,
        };
        if model.is_empty() {
            return Err("model is required".to_owned());
        }
        body.remove("name");
        let stream = match body.get("stream") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(stream)) => *stream,
            Some(other) => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go struct field .stream of type bool",
                    json_type(other)
                ));
            }
        };
        match kind {
            NativeKind::Chat => match body.get("messages") {
                None | Some(Value::Null) => {
                    body.insert("messages".into(), Value::Array(Vec::new()));
                }
                Some(Value::Array(_)) => {}
                Some(other) => return Err(type_error("messages", other, "[]api.Message")),
            },
            NativeKind::Generate => match body.get("prompt") {
                None | Some(Value::Null) => {
                    body.insert("prompt".into(), Value::String(String::new()));
                }
                Some(Value::String(_)) => {}
                Some(other) => return Err(type_error("prompt", other, "string")),
            },
            NativeKind::LegacyEmbed => match body.remove("prompt") {
                Some(Value::String(prompt)) => {
                    body.insert("input".into(), Value::Array(vec![Value::String(prompt)]));
                }
                None | Some(Value::Null) => {
                    body.insert("input".into(), Value::Array(Vec::new()));
                }
                Some(other) => return Err(type_error("prompt", &other, "string")),
            },
            NativeKind::Embed => match body.get("input") {
                Some(Value::String(_) | Value::Array(_)) => {}
                None | Some(Value::Null) => {
                    body.insert("input".into(), Value::Array(Vec::new()));
                }
                Some(_) => return Err("invalid input type".to_owned()),
            },
        }
        Ok(Self {
            kind,
            model,
            stream,
            body,
        })
    }

    /// The job's body for the installed model; generation always streams to the worker.
    pub fn native_body(&self, model: &str) -> Result<Box<RawValue>, serde_json::Error> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(model.to_owned()));
        if self.kind.embeds() {
            body.remove("stream");
        } else {
            body.insert("stream".into(), Value::Bool(true));
        }
        serde_json::value::to_raw_value(&body)
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(field: &str, value: &Value, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field .{field} of type {go_type}",
        json_type(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_name_and_the_stream_default_are_read_as_ollama_reads_them() {
        let r =
            NativeRequest::parse(NativeKind::Generate, br#"{"name":"m","prompt":"x"}"#).unwrap();
        assert_eq!((r.model.as_str(), r.stream), ("m", true));
        let body: Value = serde_json::from_str(r.native_body("m:latest").unwrap().get()).unwrap();
        assert_eq!(body["model"], "m:latest");
        assert_eq!(body["stream"], true);
        assert!(body.get("name").is_none());
        let r = NativeRequest::parse(NativeKind::Chat, br#"{"model":"m","stream":false}"#).unwrap();
        assert!(!r.stream);
    }

    #[test]
    fn mistakes_get_ollamas_messages() {
        assert_eq!(
            NativeRequest::parse(NativeKind::Chat, b"").unwrap_err(),
            "missing request body"
        );
        assert_eq!(
            NativeRequest::parse(NativeKind::Chat, b"{}").unwrap_err(),
            "model is required"
        );
        assert!(
            NativeRequest::parse(NativeKind::Chat, br#"{"model":"m","messages":"x"}"#).is_err()
        );
        assert_eq!(
            NativeRequest::parse(NativeKind::Embed, br#"{"model":"m","input":3}"#).unwrap_err(),
            "invalid input type"
        );
    }
}
