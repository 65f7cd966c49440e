//! The official Python clients (`openai` and `ollama`, pinned in `tests/python/`) against the
//! real `seadragon` binary and the fake Ollama: what users' tools actually run. The clients
//! are installed once into a virtualenv under `target/` by `tests/python/venv.sh`.

use std::path::Path;
use std::process::Command;

use fake_ollama::FakeOllama;
use serde_json::{Value, json};

use crate::ide_openai::ide_fake;
use crate::process::spawn;

const ADMIN: &str = "sk-sd-admin-for-python-clients";

/// The virtualenv's python; fails the test with the reason when it cannot be made.
fn python() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("sh")
        .arg(Path::new(root).join("tests/python/venv.sh"))
        .output()
        .expect("cannot run sh for tests/python/venv.sh");
    assert!(
        output.status.success(),
        "the Python clients could not be installed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn run(python: &str, script: &str, base: &str, key: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let output = Command::new(python)
        .arg(path)
        .env("SEADRAGON_URL", base)
        .env("SEADRAGON_KEY", key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_official_openai_and_ollama_python_clients_work_end_to_end() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let ollama = FakeOllama::start(ide_fake()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("seadragon.db").display());
    let server = spawn(
        &["serve"],
        &[
            ("SEADRAGON_DATABASE_URL", db),
            ("SEADRAGON_OLLAMA_URL", ollama.url()),
            ("SEADRAGON_ADMIN_KEY", ADMIN.to_owned()),
        ],
    )
    .await;
    let created: Value = reqwest::Client::new()
        .post(format!("{}/admin/keys", server.base))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "python", "tier": "pro"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || {
        run(&python, "openai_clients.py", &base, &key);
        run(&python, "ollama_client.py", &base, &key);
    })
    .await
    .unwrap();
}
