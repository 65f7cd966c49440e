//! Broker outages: a restarted RabbitMQ and a memory alarm. Each run boots a RabbitMQ node of its
//! own (see `private_broker.rs`), so stopping it or raising its alarm disturbs no other test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    missing_debug_implementations,
    dead_code
)]

#[path = "../api/cluster.rs"]
mod cluster;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../support/logs.rs"]
mod logs;
mod private_broker;
#[path = "../api/process.rs"]
mod process;

use std::time::Duration;

use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::Value;

use cluster::{Cluster, assert_ends_with_error};
use helpers::chat;
use private_broker::PrivateBroker;

/// The whole scenario, booting the node twice included, ends well within this.
const TEST_LIMIT: Duration = Duration::from_secs(300);

async fn chat_status(c: &Cluster, base: &str, key: &str) -> (u16, bool) {
    let response = tokio::time::timeout(
        Duration::from_secs(15),
        c.http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat("llama3.2", "hi", false))
            .send(),
    )
    .await
    .expect("a request hung during a broker outage")
    .unwrap();
    (
        response.status().as_u16(),
        response.headers().contains_key("retry-after"),
    )
}

/// Waits (bounded) until a chat succeeds again after `what`.
async fn chats_resume(c: &Cluster, base: &str, key: &str, what: &str) {
    let resumed = tokio::time::timeout(Duration::from_secs(30), async {
        while chat_status(c, base, key).await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(resumed.is_ok(), "work did not resume after {what}");
}

// Several threads, so the logs of the gateway and worker keep draining while the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outages_are_reported_refused_with_503_and_recovered_from() {
    tokio::time::timeout(TEST_LIMIT, outages())
        .await
        .expect("the broker outage scenario did not finish in time");
}

async fn outages() {
    let mut broker = PrivateBroker::start().await;
    let c = Cluster::on(broker.amqp_url());
    let fake = FakeOllama::start(FakeConfig::default()).await;
    let _worker = c.worker(&fake).await;
    let gateway = c.gateway("10").await;
    c.wait_ready(&gateway).await;
    let key = c.key(&gateway, "pro").await;
    assert_eq!(chat_status(&c, &gateway.base, &key).await.0, 200);

    // Restart: an answer running across it ends with an error event instead of hanging or
    // silently missing tokens; health reports the outage, new requests get 503 with
    // retry-after, and work resumes after.
    let running = c
        .stream_until(&gateway, &key, "#slow", "\"content\":")
        .await;
    broker.stop().await;
    assert_ends_with_error(running, "the broker went away").await;
    c.wait(&gateway, "a broker outage", |h: &Value| {
        h["queue"]["ok"] == false
    })
    .await;
    assert_eq!(chat_status(&c, &gateway.base, &key).await, (503, true));
    broker.start_again().await;
    c.wait(&gateway, "recovery", |h: &Value| {
        h["queue"]["ok"] == true && h["ollama"]["ok"] == true
    })
    .await;
    chats_resume(&c, &gateway.base, &key, "the broker restart").await;

    // Jobs queued across a restart: persistent messages on a durable queue, so once the broker
    // is back each runs and answers, exactly once.
    let before = fake.started().len();
    let blocker = c.send(&gateway, &key, "#hold");
    fake.wait_started(before + 1).await;
    let queued = [
        c.send(&gateway, &key, "kept-1"),
        c.send(&gateway, &key, "kept-2"),
    ];
    c.wait_queued(&gateway, 2).await;
    broker.stop().await;
    broker.start_again().await;
    for job in queued {
        let (status, body) = tokio::time::timeout(Duration::from_secs(60), job)
            .await
            .expect("a job queued across the restart hung")
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = blocker.await.unwrap();
    assert_eq!(
        status, 503,
        "the answer running across the restart ends with an error"
    );
    let started = fake.started();
    for kept in ["kept-1", "kept-2"] {
        assert_eq!(
            started.iter().filter(|p| *p == kept).count(),
            1,
            "{started:?}"
        );
    }

    // Memory alarm: publishing is blocked; requests are refused, none hangs.
    broker
        .ctl(&["set_vm_memory_high_watermark", "0.000001"])
        .await;
    let (status, retry_after) = chat_status(&c, &gateway.base, &key).await;
    assert_eq!((status, retry_after), (503, true));
    c.wait(&gateway, "the alarm", |h: &Value| h["queue"]["ok"] == false)
        .await;
    broker.ctl(&["set_vm_memory_high_watermark", "0.4"]).await;
    c.wait(&gateway, "the end of the alarm", |h: &Value| {
        h["queue"]["ok"] == true
    })
    .await;
    chats_resume(&c, &gateway.base, &key, "the alarm").await;
}
