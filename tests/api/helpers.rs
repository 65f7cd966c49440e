//! `spawn_app()`: a gateway on a random port with a fresh key store and its own fake Ollama,
//! plus typed helpers for the requests the tests make.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use fake_ollama::{FakeConfig, FakeOllama};
use seadragon::config::{TierConfig, default_tiers};
use seadragon::queue::QueueSnapshot;
use seadragon::{App, Config};
use serde_json::{Value, json};

/// The bootstrap admin key every test app accepts.
pub const ADMIN_KEY: &str = "sk-sd-test-admin-secret-4f9c2b7e1a";

/// Knobs a test may turn before the app starts.
pub struct Options {
    pub slots: usize,
    /// Starvation time of every tier (`SEADRAGON_AGING_SECS`).
    pub starvation: Duration,
    /// How long a stalled streaming client may hold its job.
    pub slow_client: Duration,
    pub keepalive: Duration,
    pub fake: FakeConfig,
    pub max_body_bytes: usize,
    pub aliases: Vec<(&'static str, &'static str)>,
    /// Point the gateway at a port where nothing listens.
    pub ollama_down: bool,
    /// Replaces the default tiers when not empty.
    pub tiers: Vec<TierConfig>,
    /// Hard limit of one generation.
    pub generation_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            slots: 1,
            starvation: Duration::from_secs(3600),
            slow_client: Duration::from_secs(30),
            keepalive: Duration::from_secs(5),
            fake: FakeConfig::default(),
            max_body_bytes: 1024 * 1024,
            aliases: Vec::new(),
            ollama_down: false,
            tiers: Vec::new(),
            generation_timeout: Duration::from_secs(900),
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub app: App,
    pub ollama: FakeOllama,
    pub http: reqwest::Client,
    /// The key store's URL, for tests that open it directly.
    pub database_url: String,
    config: Config,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    // Quiet unless RUST_LOG asks for more: the suite starts hundreds of gateways.
    crate::logs::init_in_process("warn", &[ADMIN_KEY]);
    let ollama = FakeOllama::start(options.fake).await;
    let dir = tempfile::tempdir().unwrap();
    let ollama_url = if options.ollama_down {
        // A port that was free a moment ago: connections to it are refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    } else {
        ollama.url()
    };
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ollama_url: ollama_url.parse().unwrap(),
        database_url: format!("sqlite://{}", dir.path().join("keys.db").display()),
        admin_key: Some(ADMIN_KEY.to_owned()),
        slots: options.slots,
        default_starvation: options.starvation,
        slow_client: options.slow_client,
        keepalive_interval: options.keepalive,
        max_body_bytes: options.max_body_bytes,
        generation_timeout: options.generation_timeout,
        aliases: options
            .aliases
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
        tiers: if options.tiers.is_empty() {
            default_tiers()
        } else {
            options.tiers
        },
        ..Config::default()
    };
    let app = App::build(config.clone()).await.unwrap();
    TestApp {
        base: format!("http://{}", app.local_addr()),
        app,
        ollama,
        http: reqwest::Client::new(),
        database_url: config.database_url.clone(),
        config,
        _dir: dir,
    }
}

/// A tier for tests: the given limits, generous defaults elsewhere.
pub fn tier(name: &str, priority: u8) -> TierConfig {
    TierConfig {
        name: name.to_owned(),
        priority,
        requests_per_minute: 10_000,
        max_concurrent: 1000,
        max_queued: 1000,
        max_wait_secs: 600,
        starvation_secs: None,
        allowed_options: None,
        max_num_ctx: None,
        allow_keep_alive: false,
        max_key_bytes: None,
        max_queued_bytes: None,
    }
}

/// A chat body for `model` with one user message.
pub fn chat(model: &str, prompt: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the gateway and starts a new one on the same key store and fake Ollama, as a
    /// restart of the process would.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            app,
            ollama,
            http,
            database_url,
            config,
            _dir,
            ..
        } = self;
        app.stop().await;
        let app = App::build(config.clone()).await.unwrap();
        TestApp {
            base: format!("http://{}", app.local_addr()),
            app,
            ollama,
            http,
            database_url,
            config,
            _dir,
        }
    }

    /// `GET path` with the admin key; the status and the JSON body.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// A request with the admin key and an optional JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Creates a user key of `tier` through the admin API and returns its secret.
    pub async fn key(&self, tier: &str) -> String {
        let response = self
            .http
            .post(self.url("/admin/keys"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": format!("{tier} test key"), "tier": tier}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    pub async fn post_chat(&self, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub fn openai(&self, key: &str) -> Client<OpenAIConfig> {
        Client::with_config(
            OpenAIConfig::new()
                .with_api_base(self.url("/v1"))
                .with_api_key(key),
        )
    }

    /// Waits until `n` jobs are queued (polls: the queue depth has no event to await).
    pub async fn wait_queued(&self, n: usize) {
        self.wait_for_queue(&format!("{n} queued"), |s| s.queued() == n)
            .await;
    }

    /// Waits until the queue satisfies `condition`.
    pub async fn wait_for_queue(&self, what: &str, condition: impl Fn(&QueueSnapshot) -> bool) {
        let reached = tokio::time::timeout(Duration::from_secs(10), async {
            while !condition(&self.app.queue_snapshot()) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "queue never reached: {what} (now {:?})",
            self.app.queue_snapshot()
        );
    }
}

/// The frames of an SSE body: `data:` payloads and `:` comments, each checked to end in a
/// blank line.
pub async fn sse_frames(response: reqwest::Response) -> Vec<String> {
    let text = response.text().await.unwrap();
    assert!(
        text.ends_with("\n\n"),
        "stream does not end with a blank line: {text:?}"
    );
    text.split_terminator("\n\n")
        .map(|frame| {
            assert!(!frame.contains('\n'), "frame spans lines: {frame:?}");
            frame.to_owned()
        })
        .collect()
}

/// The JSON of the `data:` frames, without `[DONE]`.
pub fn data_json(frames: &[String]) -> Vec<Value> {
    frames
        .iter()
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Asserts an OpenAI-shaped error and returns its `error` object.
pub async fn openai_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error["type"].is_string(), "{body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{body}"
    );
    error
}
