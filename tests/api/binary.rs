//! The real `seadragon` binary: start-up, the admin key printed once, serving, SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::fake_ollama::{FakeConfig, FakeOllama};
use crate::helpers::chat;

struct Running {
    child: Child,
    base: String,
    admin_key: Option<String>,
}

/// Starts `seadragon serve` and reads its output until it listens.
async fn start(db: &str, ollama: &str) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_seadragon"))
        .arg("serve")
        .env_clear()
        .env("SEADRAGON_LISTEN", "127.0.0.1:0")
        .env("SEADRAGON_DATABASE_URL", db)
        .env("SEADRAGON_OLLAMA_URL", ollama)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the binary exited before listening");
    })
    .await
    .unwrap();
    // Keep draining the log so the process never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            eprintln!("[seadragon] {line}");
        }
    });
    // The key, if any, is printed before the server starts serving; read what is there.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin_key = None;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(300), stdout.next_line()).await
    {
        if let Some(key) = line.strip_prefix("SEADRAGON_ADMIN_KEY=") {
            admin_key = Some(key.to_owned());
        }
    }
    Running {
        child,
        base,
        admin_key,
    }
}

#[tokio::test]
async fn the_binary_prints_an_admin_key_once_serves_chats_and_exits_cleanly_on_sigterm() {
    let ollama = FakeOllama::start(FakeConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("seadragon.db").display());
    let mut first = start(&db, &ollama.url()).await;
    let admin = first
        .admin_key
        .clone()
        .expect("no admin key printed on first start");
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

    let pid = first.child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), first.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");

    // Second start on the same store: the admin key exists, nothing is printed.
    let second = start(&db, &ollama.url()).await;
    assert_eq!(second.admin_key, None);
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
    let output = Command::new(env!("CARGO_BIN_EXE_seadragon"))
        .args(["serve", "--slots", "0"])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SEADRAGON_SLOTS"), "{stderr}");
}
