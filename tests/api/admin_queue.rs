//! The admin view of the queue and clearing it, end to end: cleared clients get a clean error.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::helpers::{Options, TestApp, chat, data_json, openai_error, spawn_app, spawn_with};

/// A non-streamed chat in the background; resolves to the response.
fn send(app: &Arc<TestApp>, key: &str, prompt: &str) -> JoinHandle<reqwest::Response> {
    let (app, key, body) = (
        Arc::clone(app),
        key.to_owned(),
        chat("llama3.2", prompt, false),
    );
    tokio::spawn(async move { app.post_chat(&key, &body).await })
}

/// Creates a key with this name and returns its secret.
async fn named_key(app: &TestApp, name: &str, tier: &str) -> String {
    let response = app
        .admin(
            Method::POST,
            "/admin/keys",
            Some(json!({"name": name, "tier": tier})),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_owned()
}

/// Polls the admin view until `condition` holds: the board has no event to await.
async fn queue_until(app: &TestApp, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (status, view) = app.admin_get("/admin/queue").await;
            assert_eq!(status, 200);
            if condition(&view) {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("the queue view never showed {what}"))
}

#[tokio::test]
async fn the_tiers_route_lists_the_configured_tiers_with_their_limits() {
    let app = spawn_app().await;
    let (status, tiers) = app.admin_get("/admin/tiers").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = tiers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["free", "pro", "enterprise"]);
    let pro = &tiers["data"][1];
    assert_eq!(pro["priority"], 2);
    assert_eq!(pro["requests_per_minute"], 600);
    assert_eq!(pro["max_queued"], 1000);
    assert_eq!(pro["max_wait_secs"], 600);
}

#[tokio::test]
async fn the_queue_view_shows_depth_per_tier_running_jobs_with_key_names_and_workers() {
    let app = Arc::new(spawn_app().await);
    let alice = named_key(&app, "alice-laptop", "pro").await;
    let free = app.key("free").await;
    let running = send(&app, &alice, "#hold");
    app.ollama.wait_started(1).await;
    let waiting = [send(&app, &free, "one"), send(&app, &free, "two")];
    app.wait_queued(2).await;

    let view = queue_until(&app, "the held job's first token", |v| {
        v["running"][0]["tokens"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(view["queued"], 2);
    let free_tier = &view["tiers"][0];
    assert_eq!(
        (free_tier["tier"].as_str(), free_tier["queued"].as_u64()),
        (Some("free"), Some(2))
    );
    assert!(
        free_tier["oldest_wait_secs"].as_f64().unwrap() > 0.0,
        "{view}"
    );
    assert_eq!(view["tiers"][1]["queued"], 0);
    let job = &view["running"][0];
    assert_eq!(job["key_name"], "alice-laptop");
    assert_eq!(job["tier"], "pro");
    assert_eq!(job["model"], "llama3.2:latest");
    assert!(job["job_id"].as_str().unwrap().starts_with("job_"));
    let worker = &view["workers"][0];
    assert_eq!(worker["name"], job["worker"]);
    assert_eq!(
        (worker["slots"].as_u64(), worker["running"].as_u64()),
        (Some(1), Some(1))
    );

    app.ollama.release();
    assert_eq!(running.await.unwrap().status(), 200);
    for w in waiting {
        assert_eq!(w.await.unwrap().status(), 200);
    }
    let idle = queue_until(&app, "an idle queue", |v| {
        v["running"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert_eq!(idle["workers"][0]["running"], 0);
}

#[tokio::test]
async fn clearing_one_tier_fails_its_queued_clients_with_503_and_spares_the_others() {
    let app = Arc::new(spawn_app().await);
    let free = app.key("free").await;
    let pro = app.key("pro").await;
    let blocker = send(&app, &pro, "#hold");
    app.ollama.wait_started(1).await;
    let cleared = send(&app, &free, "free one");
    let kept = send(&app, &pro, "pro one");
    app.wait_queued(2).await;

    let response = app.admin(Method::DELETE, "/admin/queue/free", None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"cleared": 1, "tier": "free"}));
    let error = openai_error(cleared.await.unwrap(), 503).await;
    assert!(
        error["message"].as_str().unwrap().contains("cleared"),
        "{error}"
    );
    assert_eq!(error["type"], "server_error");

    app.wait_queued(1).await;
    app.ollama.release();
    assert_eq!(blocker.await.unwrap().status(), 200);
    assert_eq!(kept.await.unwrap().status(), 200);
    assert_eq!(app.ollama.started(), ["#hold", "pro one"]);
}

#[tokio::test]
async fn clearing_the_whole_queue_ends_waiting_streams_with_an_error_event() {
    let app = Arc::new(
        spawn_with(Options {
            keepalive: Duration::from_millis(50),
            ..Options::default()
        })
        .await,
    );
    let key = app.key("enterprise").await;
    let blocker = send(&app, &key, "#hold");
    app.ollama.wait_started(1).await;
    let mut stream = app
        .post_chat(&key, &chat("llama3.2", "streamed", true))
        .await;
    // The keep-alive comment means the 200 is committed: the error must come in-band.
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b": queued"), "{first:?}");
    let plain = send(&app, &key, "plain");
    app.wait_queued(2).await;

    let response = app.admin(Method::DELETE, "/admin/queue", None).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"cleared": 2, "tier": null}));
    openai_error(plain.await.unwrap(), 503).await;
    let mut rest = String::new();
    while let Some(chunk) = stream.chunk().await.unwrap() {
        rest.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let frames: Vec<String> = rest.split_terminator("\n\n").map(str::to_owned).collect();
    let events = data_json(&frames);
    let error = &events.last().unwrap()["error"];
    assert!(
        error["message"].as_str().unwrap().contains("cleared"),
        "{rest}"
    );
    assert_eq!(error["code"], "service_unavailable");
    assert!(!rest.contains("[DONE]"), "{rest}");

    app.ollama.release();
    assert_eq!(blocker.await.unwrap().status(), 200);
    assert_eq!(app.ollama.started(), ["#hold"]);
}

#[tokio::test]
async fn clearing_an_unknown_tier_is_a_404_that_names_the_configured_tiers() {
    let app = spawn_app().await;
    let response = app
        .admin(Method::DELETE, "/admin/queue/platinum", None)
        .await;
    let error = openai_error(response, 404).await;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("platinum") && message.contains("free, pro, enterprise"),
        "{message}"
    );
}
