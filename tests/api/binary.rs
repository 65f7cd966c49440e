//! The real `seadragon` binary: start-up, the admin key printed once, serving, SIGTERM.

use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::{Value, json};

use crate::helpers::chat;
use crate::process::{Process, spawn};

async fn serve(db: &str, ollama: &str) -> Process {
    spawn(
        &["serve"],
        &[
            ("SEADRAGON_DATABASE_URL", db.to_owned()),
            ("SEADRAGON_OLLAMA_URL", ollama.to_owned()),
        ],
    )
    .await
}

fn admin_key(p: &Process) -> Option<String> {
    p.stdout
        .iter()
        .find_map(|l| l.strip_prefix("SEADRAGON_ADMIN_KEY="))
        .map(str::to_owned)
}

#[tokio::test]
async fn the_binary_prints_an_admin_key_once_serves_chats_and_exits_cleanly_on_sigterm() {
    let ollama = FakeOllama::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("seadragon.db").display());
    let mut first = serve(&db, &ollama.url()).await;
    let admin = admin_key(&first).expect("no admin key printed on first start");
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/admin/keys", first.base))
        .bearer_auth(&admin)
        .json(&json!({"name": "user", "tier": "pro"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answer: Value = http
        .post(format!("{}/v1/chat/completions", first.base))
        .bearer_auth(created["key"].as_str().unwrap())
        .json(&chat("llama3.2", "hi", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from the fake Ollama."
    );
    let status = first.terminate().await;
    assert!(status.success(), "exit status {status}");

    // Second start on the same store: the admin key exists, nothing is printed.
    let second = serve(&db, &ollama.url()).await;
    assert_eq!(admin_key(&second), None);
    let list = http
        .get(format!("{}/admin/keys", second.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200, "keys did not survive the restart");
}

#[tokio::test]
async fn the_binary_refuses_invalid_settings_with_a_clear_message() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_seadragon"))
        .args(["serve", "--slots", "0"])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SEADRAGON_SLOTS"), "{stderr}");
}

#[tokio::test]
async fn the_gateway_role_without_a_broker_url_refuses_to_start() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_seadragon"))
        .args(["gateway"])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SEADRAGON_AMQP_URL"), "{stderr}");
}
