//! The OpenAI routes IDE assistants use besides chat, replaying what each client sends:
//! Continue's autocompletion (`/v1/completions`, raw FIM prompt, streamed), Void's FIM
//! (prompt + suffix, one object), Continue's indexing (`/v1/embeddings`, floats and base64),
//! and the chat fields Roo, Zed, Continue and Copilot add that must not be refused.

use base64::Engine;
use fake_ollama::{FakeConfig, FakeModel};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, data_json, openai_error, spawn_with, sse_frames};

/// The default fake plus a coder model that does fill-in-the-middle and an embedding model.
pub fn ide_fake() -> FakeConfig {
    let mut fake = FakeConfig::default();
    let mut coder = FakeModel::new("qwen2.5-coder:1.5b", &["completion", "tools", "insert"]);
    coder.family = "qwen2".to_owned();
    coder.context_length = 32768;
    fake.models.push(coder);
    fake.models
        .push(FakeModel::new("nomic-embed-text:latest", &["embedding"]));
    fake
}

pub async fn ide_app() -> TestApp {
    spawn_with(Options {
        fake: ide_fake(),
        ..Options::default()
    })
    .await
}

const QWEN_STOPS: &[&str] = &[
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<|im_start|>",
    "<|im_end|>",
    "/src/",
    "#- coding: utf-8",
    "```",
];

#[tokio::test]
async fn continue_autocomplete_streams_the_raw_fim_prompt_untemplated() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let body = json!({"model": "qwen2.5-coder:1.5b", "max_tokens": 4096, "temperature": 0.01,
        "stream": true, "stop": QWEN_STOPS,
        "prompt": "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"});
    let response = app
        .http
        .post(app.url("/v1/completions"))
        .bearer_auth(&key)
        .header("api-key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let frames = sse_frames(response).await;
    assert_eq!(frames.last().map(String::as_str), Some("data: [DONE]"));
    let chunks = data_json(&frames);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert!(text.contains("a + b"), "{text:?}");
    assert!(
        !text.contains("<|im_start|>") && !text.contains("<|fim_"),
        "{text:?}"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    let sent = &app.ollama.generate_requests()[0];
    assert_eq!(sent["raw"], true);
    assert!(sent.get("suffix").is_none());
    assert_eq!(sent["options"]["num_predict"], 4096);
    assert_eq!(sent["options"]["temperature"], 0.01);
    assert_eq!(
        sent["options"]["stop"].as_array().unwrap().len(),
        QWEN_STOPS.len()
    );
}

#[tokio::test]
async fn void_fim_with_a_suffix_gets_one_text_completion_with_usage() {
    let app = ide_app().await;
    let key = app.key("free").await;
    let body = json!({"model": "qwen2.5-coder:1.5b", "prompt": "def add(a, b):\n    return ",
        "suffix": "\n\nprint(add(1, 2))\n", "stop": ["\n\n"], "max_tokens": 300});
    let response = app
        .http
        .post(app.url("/v1/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(answer["choices"][0]["text"], "a + b");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let sent = &app.ollama.generate_requests()[0];
    assert_eq!(sent["suffix"], "\n\nprint(add(1, 2))\n");
    assert!(sent.get("raw").is_none(), "{sent}");
}

#[tokio::test]
async fn completions_refuse_client_mistakes_in_openai_shape() {
    let app = ide_app().await;
    let key = app.key("free").await;
    for (body, status) in [
        (
            json!({"model": "qwen2.5-coder:1.5b", "prompt": "x", "echo": true}),
            400,
        ),
        (
            json!({"model": "qwen2.5-coder:1.5b", "prompt": ["a", "b"]}),
            400,
        ),
        (json!({"model": "missing:1b", "prompt": "x"}), 404),
        (json!({"model": "all-minilm", "prompt": "x"}), 400),
    ] {
        let response = app
            .http
            .post(app.url("/v1/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        openai_error(response, status).await;
    }
}

#[tokio::test]
async fn continue_indexing_gets_ordered_vectors_as_floats_and_base64() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let inputs = ["function foo() { return 1; }", "class Bar {}"];
    let body = json!({"model": "nomic-embed-text", "input": inputs});
    let response = app
        .http
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let floats: Value = response.json().await.unwrap();
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "nomic-embed-text");
    let data = floats["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["embedding"].as_array().unwrap().len(), 8);
    }
    assert!(floats["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let mut b64 = body.clone();
    b64["encoding_format"] = json!("base64");
    let response = app
        .http
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&b64)
        .send()
        .await
        .unwrap();
    let encoded: Value = response.json().await.unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][1]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let expected: Vec<f64> = data[1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(decoded.len(), expected.len());
    for (a, b) in decoded.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    let one = json!({"model": "nomic-embed-text", "input": "x y", "dimensions": 4});
    let response = app
        .http
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&one)
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(app.ollama.embed_requests()[2]["dimensions"], 4);
    for bad in [
        json!({"model": "nomic-embed-text", "input": []}),
        json!({"model": "nomic-embed-text", "input": "x", "encoding_format": "hex"}),
    ] {
        let response = app
            .http
            .post(app.url("/v1/embeddings"))
            .bearer_auth(&key)
            .json(&bad)
            .send()
            .await
            .unwrap();
        openai_error(response, 400).await;
    }
}

/// R3, R8, R11 and R13b: fields that clients add and that must not be refused.
#[tokio::test]
async fn chat_tolerates_what_roo_zed_continue_and_copilot_add() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let strict_tool = json!({"type": "function", "function": {"name": "list_files", "description": "List files",
        "strict": true, "parameters": {"type": "object", "properties": {"path": {"type": "string"},
        "recursive": {"type": "boolean"}}, "required": ["path", "recursive"], "additionalProperties": false}}});
    let bodies = [
        json!({"model": "llama3.2", "temperature": 0, "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": [{"type": "text", "text": "You are Roo.", "cache_control": {"type": "ephemeral"}}]},
                         {"role": "user", "content": "#tool List files in src using the tool."}],
            "tools": [strict_tool], "parallel_tool_calls": true, "max_completion_tokens": 2048}),
        json!({"model": "llama3.2", "stream": true, "stream_options": {"include_usage": true}, "temperature": 1.0,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_completion_tokens": 512,
            "tools": [{"type": "function", "function": {"name": "now", "description": "Current time", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": "auto", "prompt_cache_key": "thread-123", "parallel_tool_calls": false}),
        json!({"model": "llama3.2", "temperature": 0.1, "top_p": 1, "n": 1, "stream": true,
            "messages": [{"role": "user", "content": "hello"}], "stream_options": {"include_usage": true}}),
    ];
    for body in bodies {
        let response = app.post_chat(&key, &body).await;
        assert_eq!(response.status(), 200, "{body}");
        let chunks = data_json(&sse_frames(response).await);
        assert!(
            chunks.last().unwrap()["usage"]["total_tokens"].is_u64(),
            "{body}"
        );
    }
    let first = &app.ollama.chat_requests()[0];
    assert_eq!(first["options"]["num_predict"], 2048);
    assert!(first["tools"][0]["function"]["parameters"]["additionalProperties"] == false);
}

/// R9: Roo's model picker, with its headers and a base URL typed with a trailing slash.
#[tokio::test]
async fn roo_lists_models_even_through_a_doubled_slash() {
    let app = ide_app().await;
    let key = app.key("free").await;
    for path in ["/v1/models", "/v1//models", &format!("/k/{key}//v1/models")] {
        let response = app
            .http
            .get(app.url(path))
            .bearer_auth(&key)
            .header("HTTP-Referer", "https://github.com/RooVetGit/Roo-Cline")
            .header("X-Title", "Roo Code")
            .header("User-Agent", "RooCode/3.25.0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let list: Value = response.json().await.unwrap();
        assert!(
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == "qwen2.5-coder:1.5b")
        );
    }
}
