//! Bad input and unavailable parts: every answer is an OpenAI-shaped 4xx/5xx, never a 500
//! for a client mistake, and nothing bad reaches Ollama.

use serde_json::json;

use crate::helpers::{ADMIN_KEY, Options, chat, openai_error, spawn_app, spawn_with};

#[tokio::test]
async fn missing_unknown_and_malformed_keys_get_401() {
    let app = spawn_app().await;
    let url = app.url("/v1/chat/completions");
    let body = chat("llama3.2", "hi", false);
    let none = app.http.post(&url).json(&body).send().await.unwrap();
    openai_error(none, 401).await;
    let unknown = app
        .post_chat("sk-sd-0000000000000000000000000000000000000000000", &body)
        .await;
    assert_eq!(openai_error(unknown, 401).await["code"], "invalid_api_key");
    let garbage = app.post_chat("not-a-key", &body).await;
    openai_error(garbage, 401).await;
    let models = app.http.get(app.url("/v1/models")).send().await.unwrap();
    openai_error(models, 401).await;
}

#[tokio::test]
async fn malformed_json_wrong_types_and_missing_or_empty_messages_get_400_with_param() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let url = app.url("/v1/chat/completions");
    let raw = |body: &'static str| {
        app.http
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let error = openai_error(raw("{\"model\": \"llama3.2\", ").await.unwrap(), 400).await;
    assert_eq!(error["type"], "invalid_request_error");
    openai_error(raw("").await.unwrap(), 400).await;
    let cases = [
        (json!({"model": "llama3.2"}), "messages"),
        (json!({"model": "llama3.2", "messages": []}), "messages"),
        (json!({"model": "llama3.2", "messages": "hi"}), "messages"),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "llama3.2", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "temperature": 9}),
            "temperature",
        ),
    ];
    for (body, param) in cases {
        let error = openai_error(app.post_chat(&key, &body).await, 400).await;
        assert_eq!(error["param"], param, "{body}");
    }
    assert!(
        app.ollama.chat_requests().is_empty(),
        "bad input reached Ollama"
    );
}

#[tokio::test]
async fn an_unknown_model_is_a_404_before_anything_is_queued() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let error = openai_error(
        app.post_chat(&key, &chat("nope:13b", "hi", true)).await,
        404,
    )
    .await;
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    assert!(app.ollama.chat_requests().is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let app = spawn_with(Options {
        max_body_bytes: 4096,
        ..Options::default()
    })
    .await;
    let key = app.key("pro").await;
    let big = chat("llama3.2", &"x".repeat(10_000), false);
    let error = openai_error(app.post_chat(&key, &big).await, 413).await;
    assert!(error["message"].as_str().unwrap().contains("4096"));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_openai_shape() {
    let app = spawn_app().await;
    let missing = app.http.get(app.url("/v1/nothing")).send().await.unwrap();
    openai_error(missing, 404).await;
    let wrong = app
        .http
        .get(app.url("/v1/chat/completions"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    openai_error(wrong, 405).await;
}

#[tokio::test]
async fn an_unreachable_ollama_gives_503_with_retry_after_and_the_gateway_stays_up() {
    let app = spawn_with(Options {
        ollama_down: true,
        ..Options::default()
    })
    .await;
    let key = app.key("pro").await;
    let response = app.post_chat(&key, &chat("llama3.2", "hi", false)).await;
    assert!(response.headers().contains_key("retry-after"));
    let error = openai_error(response, 503).await;
    assert!(
        error["message"].as_str().unwrap().contains("unreachable"),
        "{error}"
    );
    // Where Ollama lives is the operator's business: the log has it, the client does not.
    assert!(!error.to_string().contains("127.0.0.1"), "{error}");
    let live = app.http.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
}
