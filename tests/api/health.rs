//! Health routes report each dependency.

use serde_json::Value;

use crate::helpers::{Options, spawn_app, spawn_with};

#[tokio::test]
async fn health_reports_every_part_ok_when_ollama_answers() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["ollama"]["ok"], true);
    assert_eq!(body["queue"]["ok"], true);
    assert_eq!(body["key_store"]["ok"], true);
}

#[tokio::test]
async fn health_is_503_and_names_ollama_when_it_is_down() {
    let app = spawn_with(Options {
        ollama_down: true,
        ..Options::default()
    })
    .await;
    let response = app.http.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["ollama"]["ok"], false);
    assert!(
        body["ollama"]["detail"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    assert_eq!(body["key_store"]["ok"], true);
    let live = app.http.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn when_ollama_dies_health_turns_503_and_chats_get_503_after_the_max_wait() {
    let mut app = spawn_with(Options {
        tiers: vec![seadragon::config::TierConfig {
            max_wait_secs: 1,
            ..crate::helpers::tier("pro", 2)
        }],
        ..Options::default()
    })
    .await;
    let key = app.key("pro").await;
    let ok = app
        .post_chat(&key, &crate::helpers::chat("llama3.2", "hi", false))
        .await;
    assert_eq!(ok.status(), 200);
    app.ollama.stop().await;
    let health = app.http.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let refused = app
        .post_chat(&key, &crate::helpers::chat("llama3.2", "hi", true))
        .await;
    crate::helpers::openai_error(refused, 503).await;
}
