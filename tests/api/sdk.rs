//! The gateway driven by the async-openai SDK, exactly as a user's program would.

use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestUserMessageArgs,
    CreateChatCompletionRequest, CreateChatCompletionRequestArgs, FinishReason,
};
use futures_util::StreamExt;
use serde_json::json;

use crate::helpers::spawn_app;

fn hello(model: &str) -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model(model)
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("Say hello")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_sdk_lists_and_retrieves_models_with_their_tags() {
    let app = spawn_app().await;
    let client = app.openai(&app.key("free").await);
    let models = client.models().list().await.unwrap();
    let ids: Vec<&str> = models.data.iter().map(|m| m.id.as_str()).collect();
    assert!(
        ids.contains(&"llama3.2:latest") && ids.contains(&"qwen3:8b"),
        "{ids:?}"
    );
    assert!(
        models
            .data
            .iter()
            .all(|m| m.created > 1_700_000_000 && m.owned_by == "library")
    );
    let one = client.models().retrieve("llama3.2").await.unwrap();
    assert_eq!(one.id, "llama3.2");
    match client.models().retrieve("missing:1b").await.unwrap_err() {
        OpenAIError::ApiError(e) => {
            assert_eq!(e.status_code, 404);
            assert_eq!(e.api_error.code.as_deref(), Some("model_not_found"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn the_sdk_gets_a_complete_answer() {
    let app = spawn_app().await;
    let client = app.openai(&app.key("pro").await);
    let response = client.chat().create(hello("llama3.2")).await.unwrap();
    assert_eq!(response.model, "llama3.2");
    let choice = &response.choices[0];
    assert_eq!(
        choice.message.content.as_deref(),
        Some("Hello from the fake Ollama.")
    );
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.unwrap();
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
}

#[tokio::test]
async fn the_sdk_streams_an_answer_with_usage() {
    let app = spawn_app().await;
    let client = app.openai(&app.key("pro").await);
    let mut request = hello("llama3.2");
    request.stream_options = Some(serde_json::from_value(json!({"include_usage": true})).unwrap());
    let mut stream = client.chat().create_stream(request).await.unwrap();
    let mut text = String::new();
    let mut finish = None;
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(u) = chunk.usage {
            usage = Some(u);
        }
        for choice in chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or_default());
            finish = finish.or(choice.finish_reason);
        }
    }
    assert_eq!(text, "Hello from the fake Ollama.");
    assert_eq!(finish, Some(FinishReason::Stop));
    assert_eq!(usage.unwrap().completion_tokens, 5);
}

#[tokio::test]
async fn the_sdk_receives_tool_calls_and_can_send_results_back() {
    let app = spawn_app().await;
    let client = app.openai(&app.key("pro").await);
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let request: CreateChatCompletionRequest = serde_json::from_value(json!({
        "model": "llama3.2", "tools": tools,
        "messages": [{"role": "user", "content": "#tools2 weather in Tokyo and Paris?"}]
    }))
    .unwrap();
    let response = client.chat().create(request).await.unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let calls: Vec<_> = choice
        .message
        .tool_calls
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| match c {
            ChatCompletionMessageToolCalls::Function(f) => f,
            ChatCompletionMessageToolCalls::Custom(_) => panic!("custom tool call"),
        })
        .collect();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].id, calls[1].id);
    assert_eq!(calls[1].function.arguments, r#"{"city":"Paris"}"#);

    let follow_up: CreateChatCompletionRequest = serde_json::from_value(json!({
        "model": "llama3.2", "tools": tools,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": calls[0].id, "type": "function",
                "function": {"name": "get_weather", "arguments": calls[0].function.arguments}}]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "11 degrees"}
        ]
    }))
    .unwrap();
    client.chat().create(follow_up).await.unwrap();
    let sent = app.ollama.chat_requests().pop().unwrap();
    assert_eq!(sent["messages"][2]["role"], "tool");
    assert_eq!(sent["messages"][2]["tool_name"], "get_weather");
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "Tokyo"})
    );
}
