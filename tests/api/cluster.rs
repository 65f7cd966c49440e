//! A RabbitMQ namespace for one test, and a cluster of real `seadragon` gateway and worker
//! processes in it, sharing one key store (a SQLite file, or a PostgreSQL database).

use std::time::Duration;

use fake_ollama::FakeOllama;
use seadragon::queue::rabbitmq::RabbitConfig;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::helpers::{ADMIN_KEY, chat};
use crate::process::{Process, spawn};

#[allow(clippy::disallowed_methods)]
pub fn amqp_url() -> String {
    std::env::var("SEADRAGON_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Names isolated per test, so tests share one broker without seeing each other.
pub fn rabbit_config(prefix: &str, instance: &str) -> RabbitConfig {
    RabbitConfig {
        url: amqp_url(),
        prefix: prefix.to_owned(),
        instance: instance.to_owned(),
    }
}

pub fn test_prefix() -> String {
    format!(
        "test-{}",
        seadragon::ids::random_alphanumeric(10).to_lowercase()
    )
}

/// A test's names on the broker. Dropping it deletes the durable queues and exchanges under
/// them (README's names; the per-instance queues expire by themselves), so running the suite
/// leaves nothing on a developer's broker. Drop it after the processes using it have stopped.
pub struct Namespace {
    pub prefix: String,
    /// The broker it lives on.
    pub url: String,
}

impl Namespace {
    pub fn new(url: String) -> Self {
        Self {
            prefix: test_prefix(),
            url,
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        // Drop cannot await; a thread of its own works inside a test's runtime as well.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), delete_namespace(&url, &prefix)).await
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(Ok(())))) {
            eprintln!("could not delete the broker names under {}", self.prefix);
        }
    }
}

async fn delete_namespace(url: &str, prefix: &str) -> Result<(), lapin::Error> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let connection =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    // One job queue per model and level: the contract's models and the fake Ollama's
    // (deleting one that was never declared is no error).
    for model in [
        "m",
        "n",
        "llama3.2:latest",
        "qwen3:8b",
        "llava:7b",
        "all-minilm:latest",
    ] {
        for level in 0..=4 {
            let jobs = format!("{prefix}.jobs.v3.{model}.p{level}");
            channel
                .queue_delete(jobs.into(), QueueDeleteOptions::default())
                .await?;
        }
    }
    for exchange in ["gateways", "workers", "bell"] {
        let name = format!("{prefix}.{exchange}");
        channel
            .exchange_delete(name.into(), ExchangeDeleteOptions::default())
            .await?;
    }
    connection.close(0, "test done".into()).await
}

/// A broker namespace, a key store the gateways share, and an HTTP client.
pub struct Cluster {
    namespace: Namespace,
    /// `SEADRAGON_DATABASE_URL` of every process.
    database_url: String,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Cluster {
    /// A cluster on the shared test broker.
    pub fn new() -> Self {
        Self::on(amqp_url())
    }

    /// A cluster on the broker at `amqp_url`.
    pub fn on(amqp_url: String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            namespace: Namespace::new(amqp_url),
            database_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    /// A cluster on the shared test broker whose processes keep their keys at `database_url`.
    pub fn with_database(database_url: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            ..Self::new()
        }
    }

    fn env(&self, ollama: &str, starvation_secs: &str) -> Vec<(&'static str, String)> {
        vec![
            ("SEADRAGON_AMQP_URL", self.namespace.url.clone()),
            ("SEADRAGON_AMQP_PREFIX", self.namespace.prefix.clone()),
            ("SEADRAGON_DATABASE_URL", self.database_url.clone()),
            ("SEADRAGON_OLLAMA_URL", ollama.to_owned()),
            ("SEADRAGON_ADMIN_KEY", ADMIN_KEY.to_owned()),
            ("SEADRAGON_AGING_SECS", starvation_secs.to_owned()),
            ("SEADRAGON_KEEPALIVE_SECS", "1".to_owned()),
        ]
    }

    pub async fn gateway(&self, starvation_secs: &str) -> Process {
        // A gateway has no Ollama: it learns the models from the workers' announcements.
        spawn(
            &["gateway"],
            &self.env("http://127.0.0.1:9", starvation_secs),
        )
        .await
    }

    pub async fn worker(&self, ollama: &FakeOllama) -> Process {
        spawn(&["worker"], &self.env(&ollama.url(), "10")).await
    }

    pub async fn key(&self, gateway: &Process, tier: &str) -> String {
        let created: Value = self
            .http
            .post(format!("{}/admin/keys", gateway.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": tier, "tier": tier}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["key"].as_str().unwrap().to_owned()
    }

    /// Waits until the gateway knows a worker with the fake's models.
    pub async fn wait_ready(&self, gateway: &Process) {
        self.wait(gateway, "a worker announcement", |h| {
            h["ollama"]["ok"] == true
        })
        .await;
    }

    /// Waits until the gateway reports `n` queued jobs.
    pub async fn wait_queued(&self, gateway: &Process, n: u64) {
        self.wait(gateway, &format!("{n} queued"), |h| h["queued"] == n)
            .await;
    }

    /// Waits until the gateway's `/api/health` satisfies `ok`.
    pub async fn wait(&self, gateway: &Process, what: &str, ok: impl Fn(&Value) -> bool) {
        self.poll(gateway, "/api/health", what, ok).await;
    }

    /// Waits until the gateway's admin model list satisfies `ok`.
    pub async fn wait_models(&self, gateway: &Process, what: &str, ok: impl Fn(&Value) -> bool) {
        self.poll(gateway, "/admin/models", what, ok).await;
    }

    /// Waits until the gateway's admin queue view satisfies `ok`, and returns that view.
    pub async fn wait_admin_queue(
        &self,
        gateway: &Process,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        self.poll(gateway, "/admin/queue", what, ok).await
    }

    /// Polls a JSON route (with the admin key) until its answer satisfies `ok`.
    async fn poll(
        &self,
        gateway: &Process,
        path: &str,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let reached = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Ok(r) = self
                    .http
                    .get(format!("{}{path}", gateway.base))
                    .bearer_auth(ADMIN_KEY)
                    .send()
                    .await
                    && let Ok(answer) = r.json::<Value>().await
                {
                    if ok(&answer) {
                        return answer;
                    }
                    last = answer;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        reached.unwrap_or_else(|_| panic!("gateway never reached: {what}; last answer: {last}"))
    }

    /// Starts a streamed chat and reads it until its text contains `until`.
    pub async fn stream_until(
        &self,
        gateway: &Process,
        key: &str,
        prompt: &str,
        until: &str,
    ) -> reqwest::Response {
        let mut response = self
            .http
            .post(format!("{}/v1/chat/completions", gateway.base))
            .bearer_auth(key)
            .json(&chat("llama3.2", prompt, true))
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        while !seen.contains(until) {
            let chunk = response.chunk().await.unwrap().unwrap();
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        response
    }

    /// Sends a non-streamed chat in the background; resolves to the status and body.
    pub fn send(&self, gateway: &Process, key: &str, prompt: &str) -> JoinHandle<(u16, Value)> {
        let (http, url, key) = (
            self.http.clone(),
            format!("{}/v1/chat/completions", gateway.base),
            key.to_owned(),
        );
        let body = chat("llama3.2", prompt, false);
        tokio::spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        })
    }
}

/// Reads the rest of a stream (bounded) and checks that it ends with an in-band error event
/// and no `[DONE]`.
pub async fn assert_ends_with_error(response: reqwest::Response, why: &str) {
    let rest = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .unwrap_or_else(|_| panic!("the stream hung when {why}"))
        .unwrap();
    let last = rest.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("data: {\"error\":"), "{rest}");
    assert!(!rest.contains("[DONE]"));
}
