//! Priority by tier, rescues, slot limits and cancellation, observed at the fake Ollama.

use std::sync::Arc;
use std::time::Duration;

use fake_ollama::FakeConfig;
use tokio::task::JoinHandle;

use crate::helpers::{Options, TestApp, chat, spawn_app, spawn_with};

/// Sends a non-streamed chat in the background; resolves to the HTTP status.
fn send(app: &Arc<TestApp>, key: &str, prompt: &str) -> JoinHandle<u16> {
    let (app, key, body) = (
        Arc::clone(app),
        key.to_owned(),
        chat("llama3.2", prompt, false),
    );
    tokio::spawn(async move { app.post_chat(&key, &body).await.status().as_u16() })
}

async fn all_ok(handles: Vec<JoinHandle<u16>>) {
    for h in handles {
        assert_eq!(h.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn queued_jobs_start_by_tier_then_by_arrival() {
    let app = Arc::new(spawn_app().await);
    let free = app.key("free").await;
    let pro = app.key("pro").await;
    let ent = app.key("enterprise").await;
    let blocker = send(&app, &free, "#hold");
    app.ollama.wait_started(1).await;
    let mut handles = vec![blocker];
    for (i, (key, prompt)) in [
        (&free, "f1"),
        (&pro, "p1"),
        (&ent, "e1"),
        (&pro, "p2"),
        (&free, "f2"),
    ]
    .into_iter()
    .enumerate()
    {
        handles.push(send(&app, key, prompt));
        app.wait_queued(i + 1).await;
    }
    app.ollama.release();
    all_ok(handles).await;
    assert_eq!(
        app.ollama.started(),
        ["#hold", "e1", "p1", "p2", "f1", "f2"]
    );
}

#[tokio::test]
async fn flex_work_waits_behind_its_own_tier() {
    let app = Arc::new(spawn_app().await);
    let pro = app.key("pro").await;
    let blocker = send(&app, &pro, "#hold");
    app.ollama.wait_started(1).await;
    let flex = {
        let (app, key) = (Arc::clone(&app), pro.clone());
        let mut body = chat("llama3.2", "batch", false);
        body["service_tier"] = "flex".into();
        tokio::spawn(async move { app.post_chat(&key, &body).await.status().as_u16() })
    };
    app.wait_queued(1).await;
    let normal = send(&app, &pro, "interactive");
    app.wait_queued(2).await;
    app.ollama.release();
    all_ok(vec![blocker, flex, normal]).await;
    assert_eq!(app.ollama.started(), ["#hold", "interactive", "batch"]);
}

#[tokio::test]
async fn a_starving_free_job_is_rescued_before_fresh_enterprise_jobs() {
    let starvation = Duration::from_millis(300);
    let app = Arc::new(
        spawn_with(Options {
            starvation,
            ..Options::default()
        })
        .await,
    );
    let free = app.key("free").await;
    let ent = app.key("enterprise").await;
    let blocker = send(&app, &ent, "#hold");
    app.ollama.wait_started(1).await;
    let old = send(&app, &free, "old free");
    app.wait_queued(1).await;
    // Starvation is the behaviour under test: the free job must wait that long to be rescued.
    tokio::time::sleep(starvation + Duration::from_millis(50)).await;
    let e1 = send(&app, &ent, "e1");
    app.wait_queued(2).await;
    let e2 = send(&app, &ent, "e2");
    app.wait_queued(3).await;
    app.ollama.release();
    all_ok(vec![blocker, old, e1, e2]).await;
    assert_eq!(app.ollama.started(), ["#hold", "old free", "e1", "e2"]);
}

#[tokio::test]
async fn no_more_than_slots_generations_run_at_once() {
    let app = Arc::new(
        spawn_with(Options {
            slots: 2,
            fake: FakeConfig {
                parallel: 8,
                ..FakeConfig::default()
            },
            ..Options::default()
        })
        .await,
    );
    let key = app.key("enterprise").await;
    let handles: Vec<_> = (0..5).map(|_| send(&app, &key, "#hold")).collect();
    app.ollama.wait_started(2).await;
    // Two run, three wait in the gateway's queue: the slot bound holds.
    app.wait_queued(3).await;
    assert_eq!(app.ollama.started().len(), 2);
    app.ollama.release();
    all_ok(handles).await;
    assert_eq!(app.ollama.max_concurrent(), 2);
    assert_eq!(app.ollama.finished().len(), 5);
}

#[tokio::test]
async fn a_client_that_leaves_while_queued_never_gets_its_job_run() {
    let app = Arc::new(spawn_app().await);
    let key = app.key("pro").await;
    let blocker = send(&app, &key, "#hold");
    app.ollama.wait_started(1).await;
    let victim = send(&app, &key, "victim");
    app.wait_queued(1).await;
    victim.abort();
    app.wait_queued(0).await;
    app.ollama.release();
    assert_eq!(blocker.await.unwrap(), 200);
    assert_eq!(send(&app, &key, "after").await.unwrap(), 200);
    assert_eq!(app.ollama.started(), ["#hold", "after"]);
}

#[tokio::test]
async fn a_streaming_client_sees_its_queue_position_and_leaving_cancels_the_job() {
    let app = Arc::new(
        spawn_with(Options {
            keepalive: Duration::from_millis(100),
            ..Options::default()
        })
        .await,
    );
    let key = app.key("free").await;
    let blocker = send(&app, &key, "#hold");
    app.ollama.wait_started(1).await;
    let mut response = app.post_chat(&key, &chat("llama3.2", "victim", true)).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    // One dispatch so far (the blocker) gives a rate, so the comment carries an estimate.
    assert_eq!(&first[..], b": queued position=0 tier=free eta_secs=1\n\n");
    drop(response);
    app.wait_queued(0).await;
    app.ollama.release();
    assert_eq!(blocker.await.unwrap(), 200);
    assert_eq!(send(&app, &key, "after").await.unwrap(), 200);
    assert_eq!(app.ollama.started(), ["#hold", "after"]);
}

#[tokio::test]
async fn a_client_that_leaves_mid_answer_stops_the_generation_at_once() {
    let app = spawn_app().await;
    let key = app.key("pro").await;
    let mut response = app.post_chat(&key, &chat("llama3.2", "#slow", true)).await;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: {"));
    drop(response);
    tokio::time::timeout(Duration::from_secs(5), app.ollama.wait_cancelled(1))
        .await
        .expect("Ollama's generation was not stopped");
    assert_eq!(app.ollama.cancelled(), ["#slow"]);
    app.wait_for_queue("nothing running", |s| s.running == 0)
        .await;
}

#[tokio::test]
async fn a_streaming_client_that_stops_reading_loses_its_slot_to_the_next_request() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with(Options {
        slow_client: Duration::from_millis(500),
        fake: FakeConfig {
            token_delay: Duration::ZERO,
            ..FakeConfig::default()
        },
        ..Options::default()
    })
    .await;
    let key = app.key("pro").await;
    // Sends its request, then never reads a byte of the answer.
    let body = chat("llama3.2", "#long 5000000", true).to_string();
    let mut stalled = tokio::net::TcpStream::connect(app.app.local_addr())
        .await
        .unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    app.ollama.wait_started(1).await;
    // The one slot is freed once the stalled client is dropped, and the next request runs.
    let next = tokio::time::timeout(
        Duration::from_secs(60),
        app.post_chat(&key, &chat("llama3.2", "next", false)),
    )
    .await
    .expect("the stalled stream kept the slot");
    assert_eq!(next.status(), 200);
    assert_eq!(app.ollama.cancelled(), ["#long 5000000"]);
    assert_eq!(app.ollama.started(), ["#long 5000000", "next"]);
    drop(stalled);
}

#[tokio::test]
async fn keepalives_estimate_the_wait_once_the_dispatch_rate_is_known() {
    let app = Arc::new(
        spawn_with(Options {
            keepalive: Duration::from_millis(100),
            ..Options::default()
        })
        .await,
    );
    let key = app.key("pro").await;
    for i in 0..5 {
        assert_eq!(send(&app, &key, &format!("warm{i}")).await.unwrap(), 200);
    }
    let blocker = send(&app, &key, "#hold");
    app.ollama.wait_started(6).await;
    let mut response = app
        .post_chat(&key, &chat("llama3.2", "waiting", true))
        .await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    let comment = String::from_utf8_lossy(&first);
    // Nothing ahead: the job is next, one dispatch away (six dispatches within a second make
    // that well under a second, rounded up).
    assert_eq!(comment, ": queued position=0 tier=pro eta_secs=1\n\n");
    app.ollama.release();
    assert_eq!(blocker.await.unwrap(), 200);
    drop(response);
}
