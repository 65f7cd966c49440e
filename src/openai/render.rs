//! Writes deltas as exact OpenAI JSON: `chat.completion.chunk` frames for streams (as
//! OpenAI's API sends them) and one `chat.completion` object otherwise.

use serde::Serialize;

use super::{Delta, ErrorDetail, ToolCall, Usage};

/// What every object of one answer repeats.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    /// `chatcmpl-...`, the same on every chunk of the answer.
    pub id: String,
    /// Unix seconds, fixed at the start of the answer.
    pub created: u64,
    /// The model name as the client asked for it.
    pub model: String,
    /// The service tier the job ran at (`default` or `flex`).
    pub service_tier: &'static str,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: WireDelta<'a>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct WireDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

fn wire_tool_calls(calls: &[ToolCall], with_index: bool) -> Option<Vec<WireToolCall<'_>>> {
    (!calls.is_empty()).then(|| {
        calls
            .iter()
            .map(|c| WireToolCall {
                index: with_index.then_some(c.index),
                id: &c.id,
                kind: "function",
                function: WireFunction {
                    name: &c.name,
                    arguments: &c.arguments,
                },
            })
            .collect()
    })
}

fn wire_delta(delta: &Delta) -> WireDelta<'_> {
    WireDelta {
        role: delta.first.then_some("assistant"),
        content: delta.content.as_deref(),
        reasoning_content: delta.reasoning.as_deref(),
        reasoning: delta.reasoning.as_deref(),
        tool_calls: wire_tool_calls(&delta.tool_calls, true),
    }
}

impl ResponseMeta {
    fn wire_chunk<'a>(&'a self, choices: Vec<ChunkChoice<'a>>, usage: Option<Usage>) -> Chunk<'a> {
        Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            service_tier: self.service_tier,
            choices,
            usage,
        }
    }

    fn chunk<'a>(&'a self, choices: Vec<ChunkChoice<'a>>, usage: Option<Usage>) -> String {
        to_json(&self.wire_chunk(choices, usage))
    }

    /// Appends the SSE frame (`data: <chunk>` and a blank line) carrying one delta to `out`,
    /// serialized in place: a streamed token costs no allocation of its own.
    pub fn write_delta_frame(&self, delta: &Delta, out: &mut bytes::BytesMut) {
        use bytes::BufMut as _;
        out.extend_from_slice(b"data: ");
        let choices = vec![ChunkChoice {
            index: 0,
            delta: wire_delta(delta),
            finish_reason: None,
        }];
        let chunk = self.wire_chunk(choices, None);
        // Writing plain structs into memory cannot fail (see `to_json`).
        let _ = serde_json::to_writer(out.writer(), &chunk);
        out.extend_from_slice(b"\n\n");
    }

    /// The chunk carrying one delta.
    pub fn delta_chunk(&self, delta: &Delta) -> String {
        self.chunk(
            vec![ChunkChoice {
                index: 0,
                delta: wire_delta(delta),
                finish_reason: None,
            }],
            None,
        )
    }

    /// The separate finish chunk: empty delta, the finish reason.
    pub fn finish_chunk(&self, finish_reason: &str) -> String {
        self.chunk(
            vec![ChunkChoice {
                index: 0,
                delta: WireDelta::default(),
                finish_reason: Some(finish_reason),
            }],
            None,
        )
    }

    /// The usage chunk (`choices: []`), sent only when the client asked for it.
    pub fn usage_chunk(&self, usage: Usage) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}

/// The in-band error event of a stream that already answered 200.
pub fn error_event(error: &ErrorDetail) -> String {
    to_json(&serde_json::json!({ "error": error }))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no foreign types.
    serde_json::to_string(value).unwrap_or_default()
}

/// Gathers the deltas of a non-streamed answer into one `chat.completion`.
#[derive(Debug, Default)]
pub struct CompletionBuilder {
    content: String,
    reasoning: String,
    tool_calls: Vec<ToolCall>,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    choices: [CompletionChoice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
}

impl CompletionBuilder {
    /// Adds one delta.
    pub fn push(&mut self, delta: Delta) {
        if let Some(text) = delta.content {
            self.content.push_str(&text);
        }
        if let Some(text) = delta.reasoning {
            self.reasoning.push_str(&text);
        }
        self.tool_calls.extend(delta.tool_calls);
    }

    /// The finished `chat.completion` JSON.
    pub fn finish(&self, meta: &ResponseMeta, finish_reason: &str, usage: Usage) -> String {
        let reasoning = (!self.reasoning.is_empty()).then_some(self.reasoning.as_str());
        // OpenAI sends `content: null` for an answer made only of tool calls.
        let content = (!self.content.is_empty() || self.tool_calls.is_empty())
            .then_some(self.content.as_str());
        to_json(&Completion {
            id: &meta.id,
            object: "chat.completion",
            created: meta.created,
            model: &meta.model,
            service_tier: meta.service_tier,
            choices: [CompletionChoice {
                index: 0,
                message: CompletionMessage {
                    role: "assistant",
                    content,
                    reasoning_content: reasoning,
                    reasoning,
                    tool_calls: wire_tool_calls(&self.tool_calls, false),
                },
                logprobs: None,
                finish_reason,
            }],
            usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ResponseMeta {
        ResponseMeta {
            id: "chatcmpl-1".into(),
            created: 1_761_498_924,
            model: "llama3.2".into(),
            service_tier: "default",
        }
    }

    #[test]
    fn first_delta_chunk_matches_the_reference_frame() {
        let d = Delta {
            first: true,
            content: Some("The".into()),
            ..Delta::default()
        };
        assert_eq!(
            meta().delta_chunk(&d),
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1761498924,"model":"llama3.2","service_tier":"default","choices":[{"index":0,"delta":{"role":"assistant","content":"The"},"finish_reason":null}]}"#
        );
    }

    #[test]
    fn a_delta_frame_is_its_chunk_in_sse_framing() {
        let d = Delta {
            content: Some("Hi \"you\"".into()),
            ..Delta::default()
        };
        let mut out = bytes::BytesMut::new();
        meta().write_delta_frame(&d, &mut out);
        assert_eq!(
            out,
            format!("data: {}\n\n", meta().delta_chunk(&d)).as_bytes()
        );
    }

    #[test]
    fn finish_and_usage_chunks_match_the_reference_frames() {
        assert!(
            meta()
                .finish_chunk("stop")
                .ends_with(r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#)
        );
        assert!(meta().usage_chunk(Usage::new(26, 282)).ends_with(
            r#""choices":[],"usage":{"prompt_tokens":26,"completion_tokens":282,"total_tokens":308}}"#
        ));
    }

    #[test]
    fn tool_call_chunk_carries_id_index_type_and_string_arguments() {
        let d = Delta {
            content: Some(String::new()),
            tool_calls: vec![ToolCall {
                index: 1,
                id: "call_x".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Tokyo"}"#.into(),
            }],
            ..Delta::default()
        };
        assert!(meta().delta_chunk(&d).contains(
            r#""delta":{"content":"","tool_calls":[{"index":1,"id":"call_x","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]}"#
        ));
    }

    #[test]
    fn reasoning_is_written_under_both_names() {
        let d = Delta {
            reasoning: Some("hmm".into()),
            ..Delta::default()
        };
        assert!(
            meta()
                .delta_chunk(&d)
                .contains(r#""delta":{"reasoning_content":"hmm","reasoning":"hmm"}"#)
        );
    }

    #[test]
    fn completion_joins_deltas_and_nulls_content_for_pure_tool_calls() {
        let mut b = CompletionBuilder::default();
        b.push(Delta {
            first: true,
            content: Some("Hel".into()),
            ..Delta::default()
        });
        b.push(Delta {
            content: Some("lo".into()),
            ..Delta::default()
        });
        let json: serde_json::Value =
            serde_json::from_str(&b.finish(&meta(), "stop", Usage::new(1, 2))).unwrap();
        assert_eq!(json["object"], "chat.completion");
        assert_eq!(json["choices"][0]["message"]["content"], "Hello");
        assert_eq!(json["usage"]["total_tokens"], 3);

        let mut t = CompletionBuilder::default();
        t.push(Delta {
            content: Some(String::new()),
            tool_calls: vec![ToolCall {
                index: 0,
                id: "call_a".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }],
            ..Delta::default()
        });
        let json: serde_json::Value =
            serde_json::from_str(&t.finish(&meta(), "tool_calls", Usage::default())).unwrap();
        let message = &json["choices"][0]["message"];
        assert!(message["content"].is_null());
        assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{}");
        assert!(message["tool_calls"][0].get("index").is_none());
    }
}
