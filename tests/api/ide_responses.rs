//! `/v1/responses` as Codex CLI drives it (R18 of the client research): SSE with `event:`
//! lines in OpenAI's order, text, function calls, reasoning items, usage; and the stateless
//! refusal of `previous_response_id`.

use serde_json::{Value, json};

use crate::helpers::openai_error;
use crate::ide_openai::ide_app;

/// `(event, data)` pairs of a Responses stream.
async fn events(response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    text.split_terminator("\n\n")
        .filter(|frame| !frame.starts_with(':'))
        .map(|frame| {
            let (event, data) = frame.split_once('\n').unwrap();
            let event = event.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], event.as_str());
            (event, data)
        })
        .collect()
}

fn codex(prompt: &str, model: &str) -> Value {
    json!({"model": model, "instructions": "You are Codex, a coding agent.",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}],
        "tools": [{"type": "function", "name": "shell", "description": "Run a command", "strict": false,
                   "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]}}],
        "tool_choice": "auto", "parallel_tool_calls": false, "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false, "stream": true, "include": [], "prompt_cache_key": "00000000-0000-0000-0000-000000000000"})
}

#[tokio::test]
async fn codex_gets_text_reasoning_and_usage_in_openais_event_order() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let response = app
        .http
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .json(&codex("#think Say OK", "qwen3:8b"))
        .send()
        .await
        .unwrap();
    let events = events(response).await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        &names[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    assert_eq!(names.last(), Some(&"response.completed"));
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, (_, d))| d["sequence_number"] == i)
    );
    assert_eq!(events[2].1["item"]["type"], "reasoning");
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from the fake Ollama.");
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["id"], events[0].1["response"]["id"]);
    assert!(completed["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(completed["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let kinds: Vec<&str> = completed["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "message"]);
    let sent = &app.ollama.chat_requests()[0];
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "You are Codex, a coding agent."})
    );
    assert_eq!(sent["think"], "medium");
    assert_eq!(sent["tools"][0]["function"]["name"], "shell");
}

#[tokio::test]
async fn a_function_call_is_one_item_with_its_arguments_and_its_output_goes_back() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let response = app
        .http
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&codex("#tool run ls", "qwen3:8b"))
        .send()
        .await
        .unwrap();
    let events = events(response).await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert!(
        names.windows(4).any(|w| w
            == [
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done"
            ]),
        "{names:?}"
    );
    let call = &events.last().unwrap().1["response"]["output"][0];
    assert_eq!(
        (call["type"].as_str(), call["name"].as_str()),
        (Some("function_call"), Some("shell"))
    );
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments["city"], "Tokyo");
    // The next turn sends the call and its output back, without stream: one object.
    let call_id = call["call_id"].as_str().unwrap();
    let body = json!({"model": "llama3.2", "store": false, "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "run ls"}]},
        {"type": "function_call", "call_id": call_id, "name": "shell", "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call_id, "output": "README.md"}]});
    let response = app
        .http
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(
        answer["output"][0]["content"][0]["text"],
        "Hello from the fake Ollama."
    );
    let sent = &app.ollama.chat_requests()[1]["messages"];
    assert_eq!(
        sent[2],
        json!({"role": "tool", "content": "README.md", "tool_call_id": call_id, "tool_name": "shell"})
    );
}

#[tokio::test]
async fn stored_conversations_and_bad_items_are_refused_in_openai_shape() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    for (body, param) in [
        (
            json!({"model": "llama3.2", "input": "hi", "previous_response_id": "resp_123"}),
            "previous_response_id",
        ),
        (
            json!({"model": "llama3.2", "input": [{"type": "computer_call"}]}),
            "input[0].type",
        ),
    ] {
        let response = app
            .http
            .post(app.url("/v1/responses"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = openai_error(response, 400).await;
        assert_eq!(error["param"], param);
    }
    let body = json!({"model": "llama3.2", "input": "#long 50", "max_output_tokens": 5});
    let answer: Value = app
        .http
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "incomplete");
    assert_eq!(answer["incomplete_details"]["reason"], "max_output_tokens");
}
