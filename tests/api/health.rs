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
async fn with_ollama_down_health_stays_ready_says_degraded_and_names_no_address() {
    let app = spawn_with(Options {
        ollama_down: true,
        ..Options::default()
    })
    .await;
    let response = app.http.get(app.url("/api/health")).send().await.unwrap();
    // The gateway still queues work: a load balancer must keep sending it requests.
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["ollama"]["ok"], false);
    let detail = body["ollama"]["detail"].as_str().unwrap();
    assert!(detail.contains("unreachable"), "{detail}");
    // The public report names no internal address; the admin API does.
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
    let (_, stats) = app.admin_get("/admin/stats").await;
    assert!(stats["ollama"].to_string().contains("127.0.0.1"), "{stats}");
    assert_eq!(body["key_store"]["ok"], true);
    let live = app.http.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn when_ollama_dies_health_turns_degraded_and_chats_get_503_after_the_max_wait() {
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
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    let refused = app
        .post_chat(&key, &crate::helpers::chat("llama3.2", "hi", true))
        .await;
    let error = crate::helpers::openai_error(refused, 503).await;
    // The client learns that Ollama is down, not where it lives.
    assert!(!error.to_string().contains("127.0.0.1"), "{error}");
}
