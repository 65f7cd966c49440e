//! Ollama NDJSON objects → OpenAI deltas, in OpenAI's chunk format, fixing the known client
//! pitfalls of Ollama's own `/v1` layer: tool calls get unique ids and an
//! index that really increments, and the finish reason says `tool_calls` when calls were made.

use super::{Delta, ToolCall, Usage};
use crate::ollama::wire::{ChatChunk, NativeToolCall};

/// What one native object turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    /// A delta to send to the client.
    Delta(Delta),
    /// The answer ended.
    Finished {
        /// OpenAI finish reason (`stop`, `length`, `tool_calls`, ...).
        finish_reason: String,
        /// Token counts (absent native counts are zero).
        usage: Usage,
    },
}

/// Error line inside a 200 stream (`{"error":"..."}`), which Ollama sends instead of `done`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StreamError(pub String);

/// Converts the objects of one answer, in order. Holds the little state the format needs.
#[derive(Debug, Default)]
pub struct StreamConverter {
    role_sent: bool,
    next_tool_index: u32,
    made_tool_calls: bool,
}

impl StreamConverter {
    /// A converter for a new answer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts one native object into zero or more outputs.
    pub fn push(&mut self, chunk: ChatChunk) -> Result<Vec<Converted>, StreamError> {
        if let Some(message) = chunk.error {
            return Err(StreamError(message));
        }
        let mut out = Vec::new();
        let mut message = chunk.message;
        // `/api/generate` objects put their text beside `message`, never in it.
        message.content.push_str(&chunk.response);
        message.thinking.push_str(&chunk.thinking);
        // Thinking and content in one object become two deltas, reasoning first (§3.3).
        if !message.thinking.is_empty() {
            out.push(Converted::Delta(Delta {
                first: self.take_first(),
                reasoning: Some(message.thinking),
                ..Delta::default()
            }));
        }
        let tool_calls: Vec<ToolCall> = message
            .tool_calls
            .into_iter()
            .map(|call| self.tool_call(call))
            .collect();
        let has_body = !message.content.is_empty() || !tool_calls.is_empty();
        // An empty final object that is also the first still announces the role.
        let empty_first_final = chunk.done && !self.role_sent;
        if has_body || empty_first_final {
            out.push(Converted::Delta(Delta {
                first: self.take_first(),
                content: Some(message.content),
                tool_calls,
                ..Delta::default()
            }));
        }
        if chunk.done {
            out.push(Converted::Finished {
                finish_reason: self.finish_reason(chunk.done_reason.as_deref()),
                usage: Usage::new(chunk.prompt_eval_count, chunk.eval_count),
            });
        }
        Ok(out)
    }

    fn take_first(&mut self) -> bool {
        !std::mem::replace(&mut self.role_sent, true)
    }

    fn tool_call(&mut self, call: NativeToolCall) -> ToolCall {
        let index = self.next_tool_index;
        self.next_tool_index += 1;
        self.made_tool_calls = true;
        let arguments = match call.function.arguments {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => "{}".to_owned(),
            other => other.to_string(),
        };
        ToolCall {
            index,
            id: call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(crate::ids::tool_call_id),
            name: call.function.name,
            arguments,
        }
    }

    fn finish_reason(&self, done_reason: Option<&str>) -> String {
        match done_reason {
            None | Some("" | "stop") if self.made_tool_calls => "tool_calls".to_owned(),
            None | Some("") => "stop".to_owned(),
            Some(reason) => reason.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(json: &str) -> ChatChunk {
        serde_json::from_str(json).unwrap()
    }

    fn deltas(out: &[Converted]) -> Vec<&Delta> {
        out.iter()
            .filter_map(|c| match c {
                Converted::Delta(d) => Some(d),
                Converted::Finished { .. } => None,
            })
            .collect()
    }

    #[test]
    fn role_rides_only_on_the_first_delta() {
        let mut c = StreamConverter::new();
        let a = c.push(chunk(
            r#"{"message":{"role":"assistant","content":"The"},"done":false}"#,
        ));
        let b = c.push(chunk(
            r#"{"message":{"role":"assistant","content":" sky"},"done":false}"#,
        ));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(deltas(&a)[0].first);
        assert_eq!(deltas(&a)[0].content.as_deref(), Some("The"));
        assert!(!deltas(&b)[0].first);
    }

    #[test]
    fn empty_trailer_yields_only_the_finish_with_usage() {
        let mut c = StreamConverter::new();
        c.push(chunk(r#"{"message":{"content":"Hi"},"done":false}"#))
            .unwrap();
        let out = c
            .push(chunk(
                r#"{"message":{"content":""},"done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":2}"#,
            ))
            .unwrap();
        assert_eq!(
            out,
            vec![Converted::Finished {
                finish_reason: "stop".into(),
                usage: Usage::new(26, 2)
            }]
        );
    }

    #[test]
    fn final_object_with_content_and_absent_counts_is_kept() {
        let mut c = StreamConverter::new();
        c.push(chunk(r#"{"message":{"content":"Hello"},"done":false}"#))
            .unwrap();
        let out = c
            .push(chunk(
                r#"{"message":{"content":" friend."},"done":true,"done_reason":"stop","eval_count":3}"#,
            ))
            .unwrap();
        assert_eq!(deltas(&out)[0].content.as_deref(), Some(" friend."));
        assert_eq!(
            out[1],
            Converted::Finished {
                finish_reason: "stop".into(),
                usage: Usage::new(0, 3)
            }
        );
    }

    #[test]
    fn an_empty_first_and_final_object_still_announces_the_role() {
        let mut c = StreamConverter::new();
        let out = c
            .push(chunk(
                r#"{"message":{"content":""},"done":true,"done_reason":"stop"}"#,
            ))
            .unwrap();
        let d = deltas(&out)[0];
        assert!(d.first);
        assert_eq!(d.content.as_deref(), Some(""));
    }

    #[test]
    fn thinking_and_content_in_one_object_split_into_two_deltas() {
        let mut c = StreamConverter::new();
        let out = c
            .push(chunk(
                r#"{"message":{"content":"4","thinking":"2+2"},"done":false}"#,
            ))
            .unwrap();
        let d = deltas(&out);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].reasoning.as_deref(), Some("2+2"));
        assert_eq!(d[0].content, None);
        assert!(d[0].first && !d[1].first);
        assert_eq!(d[1].content.as_deref(), Some("4"));
    }

    #[test]
    fn repeated_index_zero_tool_calls_get_increasing_indices_and_tool_calls_finish() {
        let mut c = StreamConverter::new();
        let a = c.push(chunk(
            r#"{"message":{"content":"","tool_calls":[{"id":"call_aaaa1111","function":{"index":0,"name":"w","arguments":{"city":"Tokyo"}}}]},"done":false}"#,
        )).unwrap();
        let b = c.push(chunk(
            r#"{"message":{"content":"","tool_calls":[{"function":{"index":0,"name":"w","arguments":{"city":"Paris"}}}]},"done":false}"#,
        )).unwrap();
        let end = c
            .push(chunk(
                r#"{"message":{"content":""},"done":true,"done_reason":"stop"}"#,
            ))
            .unwrap();
        let first = &deltas(&a)[0].tool_calls[0];
        let second = &deltas(&b)[0].tool_calls[0];
        assert_eq!((first.index, second.index), (0, 1));
        assert_eq!(first.id, "call_aaaa1111");
        assert!(second.id.starts_with("call_") && second.id.len() == 29);
        assert_eq!(first.arguments, r#"{"city":"Tokyo"}"#);
        assert_eq!(deltas(&a)[0].content.as_deref(), Some(""));
        assert!(
            matches!(&end[0], Converted::Finished { finish_reason, .. } if finish_reason == "tool_calls")
        );
    }

    #[test]
    fn length_wins_over_tool_calls() {
        let mut c = StreamConverter::new();
        let out = c.push(chunk(
            r#"{"message":{"content":"","tool_calls":[{"function":{"name":"w","arguments":{}}}]},"done":true,"done_reason":"length"}"#,
        )).unwrap();
        assert_eq!(deltas(&out)[0].tool_calls.len(), 1);
        assert!(
            matches!(&out[1], Converted::Finished { finish_reason, .. } if finish_reason == "length")
        );
    }

    #[test]
    fn an_error_line_is_an_error() {
        let mut c = StreamConverter::new();
        let e = c
            .push(chunk(
                r#"{"error":"an error was encountered while running the model"}"#,
            ))
            .unwrap_err();
        assert_eq!(e.0, "an error was encountered while running the model");
    }

    #[test]
    fn empty_intermediate_objects_produce_nothing() {
        let mut c = StreamConverter::new();
        let out = c
            .push(chunk(r#"{"message":{"content":""},"done":false}"#))
            .unwrap();
        assert!(out.is_empty());
    }
}
