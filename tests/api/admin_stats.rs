//! `/admin/stats` counts what really happened: outcomes per tier, tokens per tier and model as
//! the clients were told, queue waits, and the state of Ollama and the queue.

use std::sync::Arc;
use std::time::Duration;

use seadragon::config::default_tiers;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::helpers::{Options, TestApp, chat, data_json, spawn_with, sse_frames};

fn send(app: &Arc<TestApp>, key: &str, prompt: &str) -> JoinHandle<reqwest::Response> {
    let (app, key, body) = (
        Arc::clone(app),
        key.to_owned(),
        chat("llama3.2", prompt, false),
    );
    tokio::spawn(async move { app.post_chat(&key, &body).await })
}

/// Polls the stats until `condition` holds: a request is counted when the gateway lets go of
/// it, which for a stream is just after the client read its last frame.
async fn stats_until(app: &TestApp, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (status, stats) = app.admin_get("/admin/stats").await;
            assert_eq!(status, 200);
            if condition(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("the stats never showed {what}"))
}

fn tier<'a>(stats: &'a Value, name: &str) -> &'a Value {
    let tiers = stats["tiers"].as_array().unwrap();
    tiers.iter().find(|t| t["tier"] == name).unwrap()
}

#[tokio::test]
async fn stats_count_outcomes_per_tier_tokens_per_model_and_queue_waits() {
    // A free tier that holds one queued job, so that a second one is refused.
    let mut tiers = default_tiers();
    tiers[0].max_queued = 1;
    let app = Arc::new(
        spawn_with(Options {
            tiers,
            ..Options::default()
        })
        .await,
    );
    let pro = app.key("pro").await;
    let free = app.key("free").await;

    // Two completed pro answers, one of them streamed; their usage is what clients saw.
    let plain: Value = app
        .post_chat(&pro, &chat("llama3.2", "hello there", false))
        .await
        .json()
        .await
        .unwrap();
    let mut body = chat("qwen3:8b", "hi", true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let frames = sse_frames(app.post_chat(&pro, &body).await).await;
    let streamed = data_json(&frames).last().unwrap()["usage"].clone();
    // One failure: Ollama crashes on this prompt.
    assert_eq!(
        app.post_chat(&pro, &chat("llama3.2", "#crash", false))
            .await
            .status(),
        502
    );

    // Free: one job waits behind a held one, one is refused, one client leaves the queue.
    // Earlier answers already started at the fake: wait for this one in particular.
    let before = app.ollama.started().len();
    let blocker = send(&app, &pro, "#hold");
    app.ollama.wait_started(before + 1).await;
    let leaver = send(&app, &free, "leaving");
    app.wait_queued(1).await;
    assert_eq!(
        app.post_chat(&free, &chat("llama3.2", "refused", false))
            .await
            .status(),
        429
    );
    leaver.abort();
    app.wait_queued(0).await;
    let waiter = send(&app, &free, "waiting");
    app.wait_queued(1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.ollama.release();
    let held: Value = blocker.await.unwrap().json().await.unwrap();
    assert_eq!(waiter.await.unwrap().status(), 200);

    let stats = stats_until(&app, "every request", |s| {
        tier(s, "pro")["requests"]["total"] == 4 && tier(s, "free")["requests"]["total"] == 3
    })
    .await;
    let pro_tier = tier(&stats, "pro");
    assert_eq!(
        pro_tier["requests"],
        serde_json::json!({"total": 4, "completed": 3, "failed": 1, "cancelled": 0, "rejected": 0})
    );
    let free_tier = tier(&stats, "free");
    assert_eq!(
        free_tier["requests"],
        serde_json::json!({"total": 3, "completed": 1, "failed": 0, "cancelled": 1, "rejected": 1})
    );
    assert_eq!(tier(&stats, "enterprise")["requests"]["total"], 0);
    assert_eq!(tier(&stats, "enterprise")["queue_wait"], Value::Null);

    let models = stats["models"].as_array().unwrap();
    let qwen = models.iter().find(|m| m["model"] == "qwen3:8b").unwrap();
    assert_eq!(
        (qwen["tier"].as_str(), qwen["requests"].as_u64()),
        (Some("pro"), Some(1))
    );
    assert_eq!(qwen["prompt_tokens"], streamed["prompt_tokens"]);
    assert_eq!(qwen["completion_tokens"], streamed["completion_tokens"]);
    let llama = models
        .iter()
        .find(|m| m["model"] == "llama3.2:latest" && m["tier"] == "pro")
        .unwrap();
    assert_eq!(llama["requests"], 2, "{stats}");
    for field in ["prompt_tokens", "completion_tokens"] {
        let told = |answer: &Value| answer["usage"][field].as_u64().unwrap();
        assert_eq!(
            llama[field].as_u64().unwrap(),
            told(&plain) + told(&held),
            "{field}"
        );
        let pro_total = llama[field].as_u64().unwrap() + qwen[field].as_u64().unwrap();
        assert_eq!(pro_tier[field].as_u64().unwrap(), pro_total, "{field}");
    }

    // The waiting free job queued for at least the 20 ms it was held back.
    let wait = &free_tier["queue_wait"];
    assert_eq!(wait["samples"], 1);
    assert!(wait["max_ms"].as_f64().unwrap() >= 20.0, "{wait}");
    assert_eq!(wait["p50_ms"], wait["max_ms"]);
    let pro_wait = &pro_tier["queue_wait"];
    assert_eq!(pro_wait["samples"], 4);
    let (p50, p95, max) = (
        pro_wait["p50_ms"].as_f64().unwrap(),
        pro_wait["p95_ms"].as_f64().unwrap(),
        pro_wait["max_ms"].as_f64().unwrap(),
    );
    assert!(p50 <= p95 && p95 <= max, "{pro_wait}");

    assert!(stats["started_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(stats["uptime_secs"].is_u64());
    assert_eq!(stats["wait_window"], 1000);
    assert_eq!(stats["ollama"]["ok"], true);
    assert_eq!(stats["queue"]["ok"], true);
    assert!(
        stats["queue"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("embedded")
    );
    assert_eq!(
        (
            stats["queue"]["queued"].as_u64(),
            stats["queue"]["running"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn stats_report_a_down_ollama_instead_of_failing() {
    let app = spawn_with(Options {
        ollama_down: true,
        ..Options::default()
    })
    .await;
    let (status, stats) = app.admin_get("/admin/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["ollama"]["ok"], false);
    assert!(
        stats["ollama"]["detail"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    assert_eq!(stats["queue"]["ok"], true);
}
