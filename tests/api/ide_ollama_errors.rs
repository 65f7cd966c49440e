//! Ollama's error shape on the facade: client mistakes, missing keys, unknown models, and
//! model management, which the gateway refuses with a message (a pull of an installed model
//! succeeds, as Codex `--oss` needs).

use serde_json::{Value, json};

use crate::ide_ollama::{ndjson, ollama_error};
use crate::ide_openai::ide_app;

#[tokio::test]
async fn mistakes_and_model_management_get_ollama_errors() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let send = |path: &'static str, body: Value| {
        app.http
            .post(app.url(path))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    assert_eq!(
        ollama_error(
            send("/api/chat", json!({"messages": []})).await.unwrap(),
            400
        )
        .await,
        "model is required"
    );
    ollama_error(
        send("/api/chat", json!({"model": "missing:1b", "messages": []}))
            .await
            .unwrap(),
        404,
    )
    .await;
    let message = ollama_error(
        send(
            "/api/generate",
            json!({"model": "all-minilm", "prompt": "x"}),
        )
        .await
        .unwrap(),
        400,
    )
    .await;
    assert!(message.contains("does not support generate"), "{message}");
    ollama_error(
        app.http
            .post(app.url("/api/chat"))
            .json(&json!({"model": "llama3.2"}))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    // Codex --oss: pulling an installed model succeeds; anything else is refused clearly.
    let lines = ndjson(
        send("/api/pull", json!({"model": "llama3.2", "stream": true}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(lines, [json!({"status": "success"})]);
    let message = ollama_error(
        send("/api/pull", json!({"model": "mistral"}))
            .await
            .unwrap(),
        403,
    )
    .await;
    assert!(message.contains("does not pull models"), "{message}");
    for path in ["/api/create", "/api/copy", "/api/push"] {
        let message = ollama_error(send(path, json!({"model": "x"})).await.unwrap(), 403).await;
        assert!(
            message.contains("managed by the administrators"),
            "{path}: {message}"
        );
    }
    let response = app
        .http
        .delete(app.url("/api/delete"))
        .bearer_auth(&key)
        .json(&json!({"model": "x"}))
        .send()
        .await
        .unwrap();
    ollama_error(response, 403).await;
}

/// Older clients embed with `/api/embeddings`; any other unknown `/api/...` path still gets
/// an Ollama error, and `/api/health` stays the gateway's own.
#[tokio::test]
async fn the_older_embeddings_route_works_and_unknown_routes_say_what_is_served() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let body = json!({"model": "nomic-embed-text", "prompt": "hello world"});
    let response = app
        .http
        .post(app.url("/api/embeddings"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["embedding"].as_array().unwrap().len(), 8, "{answer}");
    assert_eq!(
        app.ollama.embed_requests()[0]["input"],
        json!(["hello world"])
    );
    let response = app
        .http
        .get(app.url("/api/blobs/sha256:0"))
        .send()
        .await
        .unwrap();
    let message = ollama_error(response, 404).await;
    assert!(message.contains("/api/tags"), "{message}");
    let health = app.http.get(app.url("/api/health")).send().await.unwrap();
    assert!(health.status().is_success() || health.status() == 503);
    let body: Value = health.json().await.unwrap();
    assert!(body.get("ollama").is_some(), "{body}");
}
