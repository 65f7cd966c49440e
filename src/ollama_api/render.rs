//! A job's events as Ollama's NDJSON objects (`api.ChatResponse`, `api.GenerateResponse`,
//! `api.EmbedResponse`): `model` as the client wrote it, `created_at` in RFC 3339 UTC,
//! `done:false` objects with the text, one `done:true` object with `done_reason` and the
//! counts (absent when zero, as Ollama's `omitempty` does), whole tool calls with their
//! arguments as an object, and `{"error": "..."}` for failures.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::request::NativeKind;
use crate::openai::{Delta, ToolCall, Usage};

/// What every object of one native answer repeats.
#[derive(Debug, Clone)]
pub struct NativeMeta {
    /// Which endpoint is answered.
    pub kind: NativeKind,
    /// The model name as the client asked for it.
    pub model: String,
    /// When the request arrived, for `total_duration`.
    pub arrived: Instant,
}

/// The parts of an answer the final object of a non-streamed answer carries.
#[derive(Debug, Default)]
pub struct Whole<'a> {
    /// The text.
    pub content: &'a str,
    /// The reasoning.
    pub thinking: &'a str,
    /// Tool calls.
    pub tool_calls: &'a [ToolCall],
}

impl NativeMeta {
    fn object(&self, text: &Whole<'_>, done: bool) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("model".into(), json!(self.model));
        object.insert("created_at".into(), json!(rfc3339_nano(SystemTime::now())));
        match self.kind {
            NativeKind::Chat => {
                let mut message = Map::new();
                message.insert("role".into(), json!("assistant"));
                message.insert("content".into(), json!(text.content));
                if !text.thinking.is_empty() {
                    message.insert("thinking".into(), json!(text.thinking));
                }
                if !text.tool_calls.is_empty() {
                    message.insert("tool_calls".into(), tool_calls(text.tool_calls));
                }
                object.insert("message".into(), Value::Object(message));
            }
            NativeKind::Generate | NativeKind::Embed | NativeKind::LegacyEmbed => {
                object.insert("response".into(), json!(text.content));
                if !text.thinking.is_empty() {
                    object.insert("thinking".into(), json!(text.thinking));
                }
                if !text.tool_calls.is_empty() {
                    object.insert("tool_calls".into(), tool_calls(text.tool_calls));
                }
            }
        }
        object.insert("done".into(), json!(done));
        object
    }

    /// The `done:false` object of one delta; `None` when it carries nothing.
    pub fn delta(&self, delta: &Delta) -> Option<String> {
        let whole = Whole {
            content: delta.content.as_deref().unwrap_or_default(),
            thinking: delta.reasoning.as_deref().unwrap_or_default(),
            tool_calls: &delta.tool_calls,
        };
        if whole.content.is_empty() && whole.thinking.is_empty() && whole.tool_calls.is_empty() {
            return None;
        }
        Some(Value::Object(self.object(&whole, false)).to_string())
    }

    /// The `done:true` object: the rest of the answer (all of it when not streamed), the
    /// reason and the counts.
    pub fn done(&self, whole: &Whole<'_>, finish_reason: &str, usage: Usage) -> String {
        let mut object = self.object(whole, true);
        // Ollama says "stop" after tool calls; "tool_calls" is OpenAI's word.
        let reason = if finish_reason == "tool_calls" {
            "stop"
        } else {
            finish_reason
        };
        object.insert("done_reason".into(), json!(reason));
        let nanos = u64::try_from(self.arrived.elapsed().as_nanos()).unwrap_or(u64::MAX);
        object.insert("total_duration".into(), json!(nanos.max(1)));
        if usage.prompt_tokens > 0 {
            object.insert("prompt_eval_count".into(), json!(usage.prompt_tokens));
        }
        if usage.completion_tokens > 0 {
            object.insert("eval_count".into(), json!(usage.completion_tokens));
        }
        Value::Object(object).to_string()
    }

    /// The `/api/embed` answer, or `/api/embeddings`'s `{"embedding": [...]}`.
    pub fn embeddings(&self, vectors: &[Vec<f32>], usage: Usage) -> String {
        if self.kind == NativeKind::LegacyEmbed {
            let first = vectors.first().map_or(&[][..], Vec::as_slice);
            return json!({ "embedding": first }).to_string();
        }
        let mut object = Map::new();
        object.insert("model".into(), json!(self.model));
        object.insert("embeddings".into(), json!(vectors));
        let nanos = u64::try_from(self.arrived.elapsed().as_nanos()).unwrap_or(u64::MAX);
        object.insert("total_duration".into(), json!(nanos.max(1)));
        if usage.prompt_tokens > 0 {
            object.insert("prompt_eval_count".into(), json!(usage.prompt_tokens));
        }
        Value::Object(object).to_string()
    }
}

/// Ollama's error body and in-stream error line.
pub fn error(message: &str) -> String {
    json!({ "error": message }).to_string()
}

fn tool_calls(calls: &[ToolCall]) -> Value {
    calls
        .iter()
        .map(|call| {
            // Arguments travel as an OpenAI JSON string; Ollama sends the object.
            let arguments: Value =
                serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
            json!({"id": call.id, "function": {"index": call.index, "name": call.name, "arguments": arguments}})
        })
        .collect()
}

/// Go's RFC3339Nano in UTC, trailing zeros of the fraction trimmed: `...24.097767Z`.
fn rfc3339_nano(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs() % 86_400;
    // Howard Hinnant's days-to-civil algorithm, with eras starting on 0000-03-01.
    let z = since_epoch.as_secs() / 86_400 + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let fraction = format!(".{:09}", since_epoch.subsec_nanos());
    let fraction = fraction.trim_end_matches('0').trim_end_matches('.');
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{fraction}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn meta(kind: NativeKind) -> NativeMeta {
        NativeMeta {
            kind,
            model: "llama3.2".into(),
            arrived: Instant::now(),
        }
    }

    #[test]
    fn dates_are_go_rfc3339_nano() {
        let t = UNIX_EPOCH + Duration::new(1_761_498_924, 97_767_000);
        assert_eq!(rfc3339_nano(t), "2025-10-26T17:15:24.097767Z");
    }

    #[test]
    fn chat_objects_carry_messages_and_tool_calls_carry_objects() {
        let delta = Delta {
            content: Some(String::new()),
            tool_calls: vec![ToolCall {
                index: 1,
                id: "call_1".into(),
                name: "w".into(),
                arguments: r#"{"city":"Tokyo"}"#.into(),
            }],
            ..Delta::default()
        };
        let line: Value =
            serde_json::from_str(&meta(NativeKind::Chat).delta(&delta).unwrap()).unwrap();
        assert_eq!(
            line["message"]["tool_calls"][0]["function"]["arguments"]["city"],
            "Tokyo"
        );
        assert_eq!(line["done"], false);
        let done: Value = serde_json::from_str(&meta(NativeKind::Chat).done(
            &Whole::default(),
            "tool_calls",
            Usage::new(0, 3),
        ))
        .unwrap();
        assert_eq!(done["done_reason"], "stop");
        assert_eq!(done["eval_count"], 3);
        assert!(done.get("prompt_eval_count").is_none());
    }

    #[test]
    fn generate_objects_carry_a_response() {
        let delta = Delta {
            content: Some("x".into()),
            ..Delta::default()
        };
        let line: Value =
            serde_json::from_str(&meta(NativeKind::Generate).delta(&delta).unwrap()).unwrap();
        assert_eq!(line["response"], "x");
        assert!(line.get("message").is_none());
        assert!(
            meta(NativeKind::Generate)
                .delta(&Delta::default())
                .is_none()
        );
    }
}
