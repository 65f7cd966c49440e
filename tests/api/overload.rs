//! Saying no early and clearly: per-key rate and concurrency, tier admission, max wait, and a
//! worker that rides out a busy or crashing Ollama.

use std::sync::Arc;
use std::time::Duration;

use fake_ollama::FakeConfig;
use seadragon::config::TierConfig;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::helpers::{Options, TestApp, chat, openai_error, spawn_with, sse_frames, tier};

fn with_tiers(tiers: Vec<TierConfig>) -> Options {
    Options {
        tiers,
        ..Options::default()
    }
}

fn send(app: &Arc<TestApp>, key: &str, prompt: &str) -> JoinHandle<(u16, Value)> {
    let (app, key, body) = (
        Arc::clone(app),
        key.to_owned(),
        chat("llama3.2", prompt, false),
    );
    tokio::spawn(async move {
        let response = app.post_chat(&key, &body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_openai_headers_and_other_keys_are_unaffected() {
    let app = spawn_with(with_tiers(vec![TierConfig {
        requests_per_minute: 3,
        ..tier("free", 1)
    }]))
    .await;
    let (hammer, other) = (app.key("free").await, app.key("free").await);
    for remaining in ["2", "1", "0"] {
        let ok = app.post_chat(&hammer, &chat("llama3.2", "hi", false)).await;
        assert_eq!(ok.status(), 200);
        let h = ok.headers();
        assert_eq!(h["x-ratelimit-limit-requests"], "3");
        assert_eq!(h["x-ratelimit-remaining-requests"], remaining);
        assert!(h.contains_key("x-ratelimit-reset-requests"));
    }
    let refused = app.post_chat(&hammer, &chat("llama3.2", "hi", false)).await;
    let h = refused.headers().clone();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    let retry_ms: u64 = h["retry-after-ms"].to_str().unwrap().parse().unwrap();
    assert!(retry_ms > 0 && retry_ms <= retry * 1000);
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    let error = openai_error(refused, 429).await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("requests"), Some("rate_limit_exceeded"))
    );
    assert_eq!(
        app.post_chat(&other, &chat("llama3.2", "hi", false))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.ollama.chat_requests().len(),
        4,
        "the refused request reached Ollama"
    );
}

#[tokio::test]
async fn a_key_with_its_maximum_running_or_queued_gets_429_that_should_not_be_retried() {
    let app = Arc::new(
        spawn_with(with_tiers(vec![TierConfig {
            max_concurrent: 2,
            ..tier("pro", 2)
        }]))
        .await,
    );
    let (busy, calm) = (app.key("pro").await, app.key("pro").await);
    let running = send(&app, &busy, "#hold");
    app.ollama.wait_started(1).await;
    let queued = send(&app, &busy, "second");
    app.wait_queued(1).await;
    let refused = app
        .post_chat(&busy, &chat("llama3.2", "third", false))
        .await;
    assert_eq!(refused.headers()["x-should-retry"], "false");
    assert_eq!(
        openai_error(refused, 429).await["code"],
        "concurrency_limit_exceeded"
    );
    let other = send(&app, &calm, "calm");
    app.wait_queued(2).await;
    app.ollama.release();
    for h in [running, queued, other] {
        assert_eq!(h.await.unwrap().0, 200);
    }
    // The places are free again once the answers are done.
    assert_eq!(
        app.post_chat(&busy, &chat("llama3.2", "again", false))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_full_tier_refuses_with_429_and_a_retry_after_while_other_tiers_still_queue() {
    let app = Arc::new(
        spawn_with(with_tiers(vec![
            TierConfig {
                max_queued: 1,
                ..tier("free", 1)
            },
            tier("pro", 2),
        ]))
        .await,
    );
    let (free, pro) = (app.key("free").await, app.key("pro").await);
    let blocker = send(&app, &pro, "#hold");
    app.ollama.wait_started(1).await;
    let queued = send(&app, &free, "queued");
    app.wait_queued(1).await;
    let refused = app.post_chat(&free, &chat("llama3.2", "over", true)).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(openai_error(refused, 429).await["code"], "queue_full");
    let pro_queued = send(&app, &pro, "pro");
    app.wait_queued(2).await;
    app.ollama.release();
    for h in [blocker, queued, pro_queued] {
        assert_eq!(h.await.unwrap().0, 200);
    }
}

#[tokio::test]
async fn a_job_queued_past_its_tier_max_wait_fails_with_503_and_never_runs() {
    let app = Arc::new(
        spawn_with(Options {
            keepalive: Duration::from_millis(200),
            ..with_tiers(vec![
                // Two seconds: after one dispatch the rate is one a second, so both jobs below
                // are predicted to wait within the limit and are admitted, not shed.
                TierConfig {
                    max_wait_secs: 2,
                    ..tier("free", 1)
                },
                tier("pro", 2),
            ])
        })
        .await,
    );
    let (free, pro) = (app.key("free").await, app.key("pro").await);
    let blocker = send(&app, &pro, "#hold");
    app.ollama.wait_started(1).await;
    let waiting = send(&app, &free, "too late");
    let streamed = app
        .post_chat(&free, &chat("llama3.2", "too late streamed", true))
        .await;
    // The stream started with keep-alives, so its expiry comes in-band.
    assert_eq!(streamed.status(), 200);
    let frames = sse_frames(streamed).await;
    assert!(frames[0].starts_with(": queued position="), "{frames:?}");
    assert!(
        frames.last().unwrap().starts_with("data: {\"error\":"),
        "{frames:?}"
    );
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 503, "{body}");
    app.ollama.release();
    assert_eq!(blocker.await.unwrap().0, 200);
    assert_eq!(app.ollama.started(), ["#hold"]);
}

#[tokio::test]
async fn a_busy_ollama_is_retried_with_backoff_until_it_takes_the_job() {
    let app = Arc::new(
        spawn_with(Options {
            slots: 2,
            fake: FakeConfig {
                parallel: 1,
                max_queue: 0,
                ..FakeConfig::default()
            },
            ..Options::default()
        })
        .await,
    );
    let key = app.key("pro").await;
    let first = send(&app, &key, "#hold");
    app.ollama.wait_started(1).await;
    let second = send(&app, &key, "second");
    // The fake's queue is full: "second" is answered 503 until the slot frees.
    tokio::time::timeout(Duration::from_secs(5), async {
        while app.ollama.chat_requests().len() < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the worker did not retry the busy Ollama");
    app.ollama.release();
    assert_eq!(first.await.unwrap().0, 200);
    let (status, body) = second.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.ollama.started(), ["#hold", "second"]);
}

#[tokio::test]
async fn an_ollama_crash_before_the_first_token_is_retried_once_then_reported() {
    let app = Arc::new(spawn_with(Options::default()).await);
    let key = app.key("pro").await;
    let (status, body) = send(&app, &key, "#crash").await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model runner")
    );
    assert_eq!(app.ollama.chat_requests().len(), 2);
}

#[tokio::test]
async fn a_generation_over_the_hard_timeout_ends_with_length_and_frees_its_slot() {
    let app = Arc::new(
        spawn_with(Options {
            generation_timeout: Duration::from_millis(300),
            ..Options::default()
        })
        .await,
    );
    let key = app.key("pro").await;
    let frames = sse_frames(app.post_chat(&key, &chat("llama3.2", "#slow", true)).await).await;
    assert_eq!(frames.last().unwrap(), "data: [DONE]");
    let finish: Value =
        serde_json::from_str(frames[frames.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    tokio::time::timeout(Duration::from_secs(5), app.ollama.wait_cancelled(1))
        .await
        .expect("Ollama kept generating after the timeout");
    assert_eq!(send(&app, &key, "next").await.unwrap().0, 200);
}

#[tokio::test]
async fn an_ollama_that_stays_busy_past_the_max_wait_gives_a_clear_503() {
    let app = Arc::new(
        spawn_with(with_tiers(vec![TierConfig {
            max_wait_secs: 1,
            ..tier("pro", 2)
        }]))
        .await,
    );
    let key = app.key("pro").await;
    let response = app.post_chat(&key, &chat("llama3.2", "#busy", false)).await;
    assert!(response.headers().contains_key("retry-after"));
    let error = openai_error(response, 503).await;
    assert!(
        error["message"].as_str().unwrap().contains("server busy"),
        "{error}"
    );
    assert!(app.ollama.chat_requests().len() > 2, "no retries happened");
}

#[tokio::test]
async fn request_bodies_beyond_a_keys_memory_budget_are_refused_with_429() {
    let app = Arc::new(
        spawn_with(with_tiers(vec![TierConfig {
            max_key_bytes: Some(3000),
            ..tier("pro", 2)
        }]))
        .await,
    );
    let key = app.key("pro").await;
    let padding = "x".repeat(1500);
    let blocker = send(&app, &key, &format!("#hold {padding}"));
    app.ollama.wait_started(1).await;
    // The running job holds about 1.6 KB of body: a second one of the same size passes the
    // key's 3,000 bytes, and is refused before it is queued.
    let response = app
        .post_chat(&key, &chat("llama3.2", &format!("second {padding}"), false))
        .await;
    assert!(response.headers().contains_key("retry-after"));
    let error = openai_error(response, 429).await;
    assert_eq!(error["code"], "queue_full", "{error}");
    app.ollama.release();
    assert_eq!(blocker.await.unwrap().0, 200);
    // Once the first answer is complete its bytes are back.
    let again = app
        .post_chat(&key, &chat("llama3.2", &format!("third {padding}"), false))
        .await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn a_key_at_its_concurrency_limit_is_refused_before_its_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = Arc::new(
        spawn_with(with_tiers(vec![TierConfig {
            max_concurrent: 1,
            ..tier("pro", 2)
        }]))
        .await,
    );
    let key = app.key("pro").await;
    let blocker = send(&app, &key, "#hold");
    app.ollama.wait_started(1).await;
    // Announces a 10 MB body and sends none of it: the answer must come without it.
    let mut stream = tokio::net::TcpStream::connect(app.app.local_addr())
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: 10000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("the gateway waited for the body before refusing")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    app.ollama.release();
    assert_eq!(blocker.await.unwrap().0, 200);
}
