//! Chat completions over raw HTTP: the exact JSON and SSE framing, and what reaches Ollama.

use serde_json::{Value, json};

use crate::helpers::{chat, data_json, openai_error, spawn_app, sse_frames};

#[tokio::test]
async fn non_stream_answer_is_one_chat_completion_with_usage() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let response = app
        .post_chat(&key, &chat("llama3.2", "hi there", false))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "llama3.2");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello from the fake Ollama.");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(body["usage"]["total_tokens"], 7);
    // The gateway resolved the untagged name as Ollama does.
    assert_eq!(app.ollama.chat_requests()[0]["model"], "llama3.2:latest");
}

#[tokio::test]
async fn stream_frames_are_exact_chunks_ending_with_finish_and_done() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let response = app.post_chat(&key, &chat("llama3.2", "hi", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let frames = sse_frames(response).await;
    assert_eq!(frames.last().unwrap(), "data: [DONE]");
    let chunks = data_json(&frames);
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == id && c["object"] == "chat.completion.chunk")
    );
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "Hello"})
    );
    assert!(chunks[0]["choices"][0]["finish_reason"].is_null());
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"content": " from"})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from the fake Ollama.");
    let finish = chunks.last().unwrap();
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "usage sent unasked"
    );
}

#[tokio::test]
async fn include_usage_adds_a_usage_chunk_with_empty_choices_before_done() {
    let app = spawn_app().await;
    let key = app.key("free").await;
    let mut body = chat("llama3.2", "one two three", true);
    body["stream_options"] = json!({"include_usage": true});
    let frames = sse_frames(app.post_chat(&key, &body).await).await;
    let chunks = data_json(&frames);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 3);
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(frames.last().unwrap(), "data: [DONE]");
}

#[tokio::test]
async fn completion_ids_are_unique() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..5 {
        let body: Value = app
            .post_chat(&key, &chat("llama3.2", "x", false))
            .await
            .json()
            .await
            .unwrap();
        assert!(ids.insert(body["id"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn content_in_the_final_object_is_kept_and_absent_counts_are_zero() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let body: Value = app
        .post_chat(&key, &chat("llama3.2", "#final-content", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello there friend."
    );
    assert_eq!(body["usage"]["prompt_tokens"], 0);
}

#[tokio::test]
async fn openai_fields_reach_ollama_as_native_options_and_omitted_ones_stay_unset() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let body = json!({
        "model": "llava:7b",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]}
        ],
        "temperature": 0.3, "top_p": 0.8, "seed": 42, "max_completion_tokens": 64,
        "stop": ["\n\n"], "keep_alive": "10m", "options": {"num_ctx": 4096},
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
        "service_tier": "flex", "some_future_field": true
    });
    let response = app.post_chat(&key, &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["service_tier"], "flex");
    let sent = &app.ollama.chat_requests()[0];
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["messages"][1]["content"], "What is this?");
    assert_eq!(sent["messages"][1]["images"], json!(["iVBORw0KGgo="]));
    let options = &sent["options"];
    assert_eq!(options["temperature"], 0.3);
    assert_eq!(options["top_p"], 0.8);
    assert_eq!(options["seed"], 42);
    assert_eq!(options["num_predict"], 64);
    assert_eq!(options["stop"], json!(["\n\n"]));
    assert_eq!(options["num_ctx"], 4096);
    assert_eq!(sent["format"], json!({"type": "object"}));
    // The pro tier does not allow keep_alive: it is removed, Ollama's own setting applies.
    assert!(sent.get("keep_alive").is_none(), "{sent}");
    assert!(sent.get("service_tier").is_none() && sent.get("some_future_field").is_none());

    app.post_chat(&key, &chat("llama3.2", "plain", false)).await;
    let plain = &app.ollama.chat_requests()[1];
    assert!(plain.get("options").is_none(), "{plain}");
}

#[tokio::test]
async fn max_tokens_caps_the_answer_with_finish_reason_length() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let mut body = chat("llama3.2", "hi", false);
    body["max_tokens"] = json!(2);
    let answer: Value = app.post_chat(&key, &body).await.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello from");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn a_mid_stream_ollama_error_becomes_an_in_band_error_event_and_a_clean_end() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let response = app
        .post_chat(&key, &chat("llama3.2", "#mid-error", true))
        .await;
    assert_eq!(response.status(), 200);
    let frames = sse_frames(response).await;
    let last: Value =
        serde_json::from_str(frames.last().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("an error was encountered"),
        "{last}"
    );
    assert!(!frames.iter().any(|f| f == "data: [DONE]"));
    assert!(data_json(&frames)[0]["choices"][0]["delta"]["content"].is_string());
}

#[tokio::test]
async fn an_abrupt_close_by_ollama_becomes_an_in_band_error_event() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let frames = sse_frames(
        app.post_chat(&key, &chat("llama3.2", "#abrupt", true))
            .await,
    )
    .await;
    let last = frames.last().unwrap();
    assert!(last.starts_with("data: {\"error\":"), "{frames:?}");
    // The gateway itself is fine afterwards.
    let ok = app.post_chat(&key, &chat("llama3.2", "hi", false)).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn ollama_errors_before_the_first_byte_become_http_errors_even_when_streaming() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let crash = app.post_chat(&key, &chat("llama3.2", "#crash", true)).await;
    let error = openai_error(crash, 502).await;
    assert!(error["message"].as_str().unwrap().contains("model runner"));
    let mut tools = chat("llava:7b", "#tool", false);
    tools["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
    let refused = openai_error(app.post_chat(&key, &tools).await, 400).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("does not support tools")
    );
}
