//! SIGTERM on the real binary: running answers finish within the drain time, queued ones end
//! with an error, streams that outlast the drain are closed with an error event, exit 0.

use std::time::Duration;

use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, chat};
use crate::process::{Process, spawn};

async fn serve(ollama: &FakeOllama, dir: &tempfile::TempDir, drain_secs: &str) -> Process {
    spawn(
        &["serve"],
        &[
            (
                "SEADRAGON_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("keys.db").display()),
            ),
            ("SEADRAGON_OLLAMA_URL", ollama.url()),
            ("SEADRAGON_ADMIN_KEY", ADMIN_KEY.to_owned()),
            ("SEADRAGON_KEEPALIVE_SECS", "0.2".to_owned()),
            ("SEADRAGON_DRAIN_SECS", drain_secs.to_owned()),
        ],
    )
    .await
}

async fn key(http: &reqwest::Client, base: &str) -> String {
    let created: Value = http
        .post(format!("{base}/admin/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "k", "tier": "pro"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["key"].as_str().unwrap().to_owned()
}

async fn stream(http: &reqwest::Client, base: &str, key: &str, prompt: &str) -> reqwest::Response {
    let response = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat("llama3.2", prompt, true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// Reads until `needle` shows up in the stream.
async fn read_until(response: &mut reqwest::Response, needle: &str) {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let chunk = response.chunk().await.unwrap().expect("stream ended early");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

async fn rest(response: reqwest::Response) -> String {
    tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .expect("the stream was left hanging")
        .unwrap()
}

#[tokio::test]
async fn sigterm_finishes_running_answers_ends_queued_ones_with_an_error_and_exits_0() {
    let ollama = FakeOllama::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(&ollama, &dir, "20").await;
    let http = reqwest::Client::new();
    let key = key(&http, &server.base).await;
    let mut running = stream(&http, &server.base, &key, "#hold").await;
    read_until(&mut running, "\"content\":\"Hello\"").await;
    let mut queued = stream(&http, &server.base, &key, "queued").await;
    read_until(&mut queued, ": queued position=0").await;

    let pid = server.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let queued_rest = rest(queued).await;
    assert!(
        queued_rest.trim_end().ends_with('}') && queued_rest.contains("data: {\"error\":"),
        "{queued_rest}"
    );
    ollama.release();
    let running_rest = rest(running).await;
    assert!(running_rest.ends_with("data: [DONE]\n\n"), "{running_rest}");
    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(ollama.started(), ["#hold"]);
}

#[tokio::test]
async fn sigterm_closes_streams_that_outlast_the_drain_time_with_an_error_event() {
    let ollama = FakeOllama::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(&ollama, &dir, "1").await;
    let http = reqwest::Client::new();
    let key = key(&http, &server.base).await;
    let mut endless = stream(&http, &server.base, &key, "#hold").await;
    read_until(&mut endless, "\"content\":\"Hello\"").await;
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
    let tail = rest(endless).await;
    assert!(
        tail.contains("data: {\"error\":") && tail.contains("shutting down"),
        "{tail}"
    );
}
