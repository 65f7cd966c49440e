//! The per-tier policy on Ollama's own settings, on every API: options outside the tier's list
//! and an oversized `num_ctx` are refused with a 400 naming the parameter; a caller's
//! `keep_alive` never reaches Ollama unless the tier allows it.

use serde_json::{Value, json};

use seadragon::config::TierConfig;

use crate::helpers::{Options, openai_error, spawn_app, spawn_with, tier};

fn chat_with(extra: &Value) -> Value {
    let mut body = json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn gpu_settings_and_a_huge_context_are_refused_naming_the_parameter() {
    let app = spawn_app().await;
    let key = app.key("free").await;
    for (options, param) in [
        (json!({"num_gpu": 99}), "options.num_gpu"),
        (
            json!({"temperature": 0.1, "use_mmap": false}),
            "options.use_mmap",
        ),
        (json!({"num_ctx": 131_072}), "options.num_ctx"),
    ] {
        let response = app
            .post_chat(&key, &chat_with(&json!({"options": options})))
            .await;
        let error = openai_error(response, 400).await;
        assert_eq!(error["param"], param, "{error}");
    }
    // Nothing was queued for them.
    assert!(app.ollama.chat_requests().is_empty());
}

#[tokio::test]
async fn sampling_options_pass_and_keep_alive_is_dropped() {
    let app = spawn_app().await;
    let key = app.key("free").await;
    let body =
        chat_with(&json!({"options": {"temperature": 0.3, "num_ctx": 4096}, "keep_alive": 0}));
    assert_eq!(app.post_chat(&key, &body).await.status(), 200);
    let seen = app.ollama.chat_requests();
    assert_eq!(seen[0]["options"]["temperature"], 0.3);
    assert_eq!(seen[0]["options"]["num_ctx"], 4096);
    assert!(seen[0].get("keep_alive").is_none(), "{}", seen[0]);
}

#[tokio::test]
async fn a_tier_may_widen_the_policy() {
    let app = spawn_with(Options {
        tiers: vec![TierConfig {
            allowed_options: Some(vec!["num_gpu".into(), "num_ctx".into()]),
            max_num_ctx: Some(200_000),
            allow_keep_alive: true,
            ..tier("ops", 3)
        }],
        ..Options::default()
    })
    .await;
    let key = app.key("ops").await;
    let body = chat_with(&json!({"options": {"num_gpu": 1}, "keep_alive": "-1"}));
    assert_eq!(app.post_chat(&key, &body).await.status(), 200);
    let seen = app.ollama.chat_requests();
    assert_eq!(seen[0]["options"]["num_gpu"], 1);
    assert_eq!(seen[0]["keep_alive"], "-1");
    // Options off its list are still refused.
    let refused = app
        .post_chat(&key, &chat_with(&json!({"options": {"temperature": 1}})))
        .await;
    assert_eq!(
        openai_error(refused, 400).await["param"],
        "options.temperature"
    );
}

#[tokio::test]
async fn the_ollama_facade_applies_the_same_policy_in_its_own_error_shape() {
    let app = spawn_app().await;
    let key = app.key("free").await;
    let response = app
        .http
        .post(app.url("/api/chat"))
        .bearer_auth(&key)
        .json(
            &json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}],
            "options": {"main_gpu": 1}, "stream": false}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("main_gpu"),
        "{body}"
    );
}
