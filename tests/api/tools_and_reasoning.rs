//! Streamed tool calls (index fixing, calls in the final object) and thinking output.

use serde_json::{Value, json};

use crate::helpers::{chat, data_json, spawn_app, sse_frames};

fn with_tools(mut body: Value) -> Value {
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather"}}]);
    body
}

#[tokio::test]
async fn streamed_tool_calls_get_increasing_indices_ids_and_a_tool_calls_finish() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let body = with_tools(chat("llama3.2", "#tools2", true));
    let chunks = data_json(&sse_frames(app.post_chat(&key, &body).await).await);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0]["index"].as_u64(), calls[1]["index"].as_u64()),
        (Some(0), Some(1))
    );
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert!(
        calls
            .iter()
            .all(|c| c["id"].as_str().unwrap().starts_with("call_") && c["type"] == "function")
    );
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Tokyo"}"#);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn a_tool_call_inside_the_final_object_is_delivered() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    for stream in [true, false] {
        let body = with_tools(chat("llama3.2", "#tool-final", stream));
        let response = app.post_chat(&key, &body).await;
        if stream {
            let chunks = data_json(&sse_frames(response).await);
            assert!(
                chunks
                    .iter()
                    .any(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
            );
            assert_eq!(
                chunks.last().unwrap()["choices"][0]["finish_reason"],
                "tool_calls"
            );
        } else {
            let answer: Value = response.json().await.unwrap();
            assert_eq!(
                answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
                "get_weather"
            );
            assert!(answer["choices"][0]["message"]["content"].is_null());
            assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
        }
    }
}

#[tokio::test]
async fn thinking_arrives_as_reasoning_content_before_the_answer() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let chunks =
        data_json(&sse_frames(app.post_chat(&key, &chat("qwen3:8b", "#think", true)).await).await);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Let me think.");
    assert_eq!(chunks[0]["choices"][0]["delta"]["reasoning"], "Let");
    let answer: Value = app
        .post_chat(&key, &chat("qwen3:8b", "#think", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["reasoning_content"],
        "Let me think."
    );
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from the fake Ollama."
    );
}

#[tokio::test]
async fn reasoning_effort_none_turns_thinking_off() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let mut body = chat("qwen3:8b", "#think", false);
    body["reasoning_effort"] = json!("none");
    let answer: Value = app.post_chat(&key, &body).await.json().await.unwrap();
    assert!(
        answer["choices"][0]["message"]
            .get("reasoning_content")
            .is_none()
    );
    assert_eq!(app.ollama.chat_requests()[0]["think"], false);
}
