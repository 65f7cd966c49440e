//! The IDE surface behind RabbitMQ: a gateway with no Ollama of its own and a worker in
//! another process. Every kind of job (generate, embed, chat for the Responses API) crosses
//! the broker, and Ollama discovery answers from the workers' announcements.

use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::ide_openai::ide_fake;

#[tokio::test]
async fn every_kind_of_job_and_discovery_work_through_the_broker() {
    let c = Cluster::new();
    let fake = FakeOllama::start(ide_fake()).await;
    let _worker = c.worker(&fake).await;
    let gateway = c.gateway("3600").await;
    c.wait_ready(&gateway).await;
    let key = c.key(&gateway, "pro").await;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", gateway.base);
    // The version comes with the worker's announcement, which may lag the readiness.
    assert_eq!(
        reported_version(&http, &gateway.base, "0.33.0").await,
        "0.33.0"
    );
    let tags: Value = http
        .get(url(&format!("/k/{key}/api/tags")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = tags["models"].as_array().unwrap();
    assert!(
        models
            .iter()
            .all(|m| m["digest"].as_str().is_some_and(|d| !d.is_empty())),
        "{tags}"
    );
    assert!(
        models.iter().all(|m| m.get("ollama_version").is_none()),
        "{tags}"
    );

    let body =
        json!({"model": "nomic-embed-text", "input": ["a", "b c"], "encoding_format": "float"});
    let embedded: Value = http
        .post(url("/v1/embeddings"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(embedded["data"].as_array().unwrap().len(), 2, "{embedded}");
    let body = json!({"model": "qwen2.5-coder:1.5b", "prompt": "<|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>"});
    let completed: Value = http
        .post(url("/v1/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(completed["choices"][0]["text"], "a + b", "{completed}");
    let body = json!({"model": "llama3.2", "input": "hi"});
    let response: Value = http
        .post(url("/v1/responses"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        response["output"][0]["content"][0]["text"], "Hello from the fake Ollama.",
        "{response}"
    );
    let body =
        json!({"model": "qwen2.5-coder:1.5b", "prompt": "def f(", "suffix": ")", "stream": false});
    let native: Value = http
        .post(url("/api/generate"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(native["response"], "a + b", "{native}");
    let show: Value = http
        .post(url("/api/show"))
        .bearer_auth(&key)
        .json(&json!({"model": "llama3.2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(show["details"]["family"].is_string(), "{show}");
    // What the worker's Ollama said, passed on: Roo and Copilot read these.
    let capabilities = show["capabilities"].as_array().cloned().unwrap_or_default();
    assert!(capabilities.contains(&json!("tools")), "{show}");
    let context = show["model_info"]
        .as_object()
        .and_then(|info| info.iter().find(|(k, _)| k.ends_with(".context_length")));
    assert!(context.is_some_and(|(_, v)| v.as_u64() > Some(0)), "{show}");
    // The models the generations above loaded, as the worker last announced them.
    let loaded = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let ps: Value = http
                .get(url("/api/ps"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ps["models"].as_array().is_some_and(|m| !m.is_empty()) {
                return ps;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("/api/ps never listed a loaded model behind the broker");
    assert!(loaded["models"][0]["name"].is_string(), "{loaded}");
}

#[tokio::test]
async fn api_version_reports_the_lowest_ollama_behind_the_gateway() {
    // Both Ollamas hold the same models: the model list keeps one entry per model, so only
    // the workers' own announcements tell the older Ollama apart.
    let c = Cluster::new();
    let newer = FakeOllama::start(FakeConfig::default()).await;
    let older = FakeOllama::start(FakeConfig {
        version: "0.12.3",
        ..FakeConfig::default()
    })
    .await;
    let _wn = c.worker(&newer).await;
    let _wo = c.worker(&older).await;
    let gateway = c.gateway("3600").await;
    c.wait_ready(&gateway).await;
    let http = reqwest::Client::new();
    assert_eq!(
        reported_version(&http, &gateway.base, "0.12.3").await,
        "0.12.3"
    );
}

/// The gateway's `/api/version`, polled (bounded) until it reports `expected`, since the
/// versions arrive with the workers' announcements; the last answer otherwise.
async fn reported_version(http: &reqwest::Client, base: &str, expected: &str) -> Value {
    let mut version = Value::Null;
    for _ in 0..200 {
        version = http
            .get(format!("{base}/api/version"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if version["version"] == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    version["version"].clone()
}
