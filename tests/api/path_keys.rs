//! Keys in the URL path (`/k/<key>/...`) stay out of the logs and the metrics: the real
//! binary, logging every request URI, is driven through a path key and its whole log read;
//! the same log holds one access line per request.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn a_path_key_is_never_logged_nor_in_the_metrics() {
    let ollama = FakeOllama::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = "sk-sd-admin-for-path-key-test";
    let mut child = Command::new(env!("CARGO_BIN_EXE_seadragon"))
        .arg("serve")
        .env_clear()
        .env("RUST_LOG", "debug,tower_http=trace")
        .env("SEADRAGON_LISTEN", "127.0.0.1:0")
        .env("SEADRAGON_ADMIN_KEY", admin)
        .env("SEADRAGON_OLLAMA_URL", ollama.url())
        .env(
            "SEADRAGON_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("k.db").display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            sink.lock().unwrap().push(line);
        }
    });
    let base = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .unwrap()
        .unwrap();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/admin/keys"))
        .bearer_auth(admin)
        .json(&json!({"name": "copilot", "tier": "pro"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let tags = http
        .get(format!("{base}/k/{key}/api/tags"))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 200);
    let chat = http
        .post(format!("{base}/k/{key}/v1/chat/completions"))
        .header("authorization", "Bearer ")
        .json(&json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let missing = http
        .get(format!("{base}/k/{key}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(&key));
    // Let the last log lines arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.unwrap();
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("/api/tags"),
        "the URI is not logged at this level, so the test proves nothing:\n{log}"
    );
    let secret = key.trim_start_matches("sk-sd-");
    assert!(
        !log.contains(secret),
        "the path key leaked into the log:\n{log}"
    );
    assert!(!log.contains(admin), "the admin key leaked into the log");
    // One access line per request: the chat's names its key by id, its tier, model and job,
    // and the request id a client would quote.
    let access = log
        .lines()
        .find(|l| l.contains("seadragon::access") && l.contains("/v1/chat/completions"))
        .unwrap_or_else(|| panic!("no access line for the chat:\n{log}"));
    for field in [
        "status=200",
        "key=key_",
        "tier=pro",
        "model=llama3.2:latest",
        "job=job_",
        "request_id=req_",
    ] {
        assert!(access.contains(field), "{field} missing from {access}");
    }
}
