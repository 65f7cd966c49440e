//! Property tests of the parsers that take untrusted bytes: the chat request parser (any body a
//! client sends) and Ollama's stream converter (any NDJSON line a broken or hostile Ollama
//! sends). Neither may panic or loop, whatever the input; each run tries `PROPTEST_CASES`
//! inputs (256 by default), so the run stays bounded.

use proptest::prelude::*;
use seadragon::ollama::wire::ChatChunk;
use seadragon::openai::ChatRequest;
use seadragon::openai::convert::StreamConverter;
use serde_json::{Value, json};

/// JSON values of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Chat request bodies: mostly well-formed fields with values of any type.
fn chat_body() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just("model"),
        Just("messages"),
        Just("stream"),
        Just("tools"),
        Just("tool_choice"),
        Just("max_tokens"),
        Just("max_completion_tokens"),
        Just("temperature"),
        Just("stop"),
        Just("response_format"),
        Just("service_tier"),
        Just("stream_options"),
        Just("options"),
        Just("n"),
    ];
    prop::collection::vec((field, any_json()), 0..8).prop_map(|fields| {
        let mut body = serde_json::Map::new();
        body.insert("model".into(), json!("llama3.2"));
        body.insert(
            "messages".into(),
            json!([{"role": "user", "content": "hi"}]),
        );
        for (name, value) in fields {
            body.insert(name.into(), value);
        }
        Value::Object(body)
    })
}

/// Ollama chat chunks: the fields Ollama sends, with values of any type and some noise.
fn chunk() -> impl Strategy<Value = Value> {
    (
        any_json(),
        any_json(),
        prop::option::of(any::<bool>()),
        any_json(),
        any_json(),
    )
        .prop_map(|(content, tool_calls, done, reason, count)| {
            json!({
                "model": "m",
                "created_at": "2025-05-05T00:00:00Z",
                "message": {"role": "assistant", "content": content, "thinking": "",
                    "tool_calls": tool_calls},
                "done": done,
                "done_reason": reason,
                "eval_count": count,
            })
        })
}

proptest! {
    #[test]
    fn any_bytes_give_a_request_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = ChatRequest::parse(&bytes);
    }

    #[test]
    fn any_field_values_give_a_request_or_an_error(body in chat_body()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        if let Ok(request) = ChatRequest::parse(&bytes) {
            // A parsed request always becomes a native body.
            prop_assert!(request.native_body("llama3.2:latest").is_ok());
        }
    }

    #[test]
    fn any_stream_of_chunks_converts_or_fails_cleanly(lines in prop::collection::vec(chunk(), 0..12)) {
        let mut converter = StreamConverter::new();
        for line in lines {
            let Ok(chunk) = serde_json::from_value::<ChatChunk>(line) else { continue };
            if converter.push(chunk).is_err() {
                break;
            }
        }
    }
}
