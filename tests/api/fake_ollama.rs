//! A fake Ollama server (native API of v0.33) for Seadragon's integration tests.
//!
//! It reproduces Ollama's native wire formats (API types, chat streaming, errors):
//! NDJSON streams whose headers only leave with the first object, one final `done:true`
//! object whose zero metrics are omitted, `{"error":"..."}` bodies with Ollama's status codes
//! and messages, gin's text 404/405, and Ollama's scheduler (`parallel` slots plus a bounded
//! queue that answers 503 when full). The first word of the last user message picks a
//! scripted scenario (`#tool`, `#hold`, `#abrupt`, ... see `prepare`) so that tests can
//! provoke each edge case of the protocol, and the fake records what it received and how
//! each generation ended.
//!
//! - `script`: a chat request validated in Ollama's order and the scenario it names;
//! - `generation`: scheduler slots and the NDJSON objects, streamed or aggregated;
//! - `ide`: `/api/generate`, `/api/embed` and the other routes IDE clients use.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{StreamExt, stream};
use rand::RngExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[path = "fake_ollama_generation.rs"]
mod generation;
#[path = "fake_ollama_ide.rs"]
mod ide;
#[path = "fake_ollama_script.rs"]
mod script;

use generation::*;
use script::*;

const DEFAULT_ANSWER: &[&str] = &["Hello", " from", " the", " fake", " Ollama."];
const JSON_ANSWER: &[&str] = &["{\"answer\":", " \"fake\"}"];
const THOUGHTS: &[&str] = &["Let", " me", " think."];
const BUSY: &str = "server busy, please try again.  maximum pending requests exceeded";
const CRASH: &str = "model runner has unexpectedly stopped, this may be due to resource \
                     limitations or an internal error, check ollama server logs for details";
const MID_ERROR: &str = "an error was encountered while running the model";
/// `modified_at` carries the server's local offset, unlike the UTC `created_at` of chat objects.
const MODIFIED_AT: &str = "2025-05-04T17:37:44.706015396-07:00";
/// `#slow` must leave the client time to hang up while the generation is still running.
const SLOW_MIN_DELAY: Duration = Duration::from_millis(10);
const NDJSON: &str = "application/x-ndjson";
/// gin's `c.JSON`, used for every non-streamed answer and every error.
const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One installed model, as `/api/tags` and `/api/show` describe it.
#[derive(Debug, Clone)]
pub struct FakeModel {
    pub name: String,
    /// Ollama's capability names: `completion`, `tools`, `thinking`, `vision`, `embedding`.
    pub capabilities: Vec<String>,
    pub family: String,
    pub parameter_size: String,
    pub quantization_level: String,
    pub context_length: u64,
}

impl FakeModel {
    pub fn new(name: &str, capabilities: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            family: "llama".to_owned(),
            parameter_size: "8.0B".to_owned(),
            quantization_level: "Q4_K_M".to_owned(),
            context_length: 8192,
        }
    }

    fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    fn details(&self) -> Value {
        json!({"parent_model": "", "format": "gguf", "family": self.family,
               "families": [self.family], "parameter_size": self.parameter_size,
               "quantization_level": self.quantization_level})
    }

    /// Clients treat the digest as the model's identity, so it depends on the name alone.
    fn hash(&self, salt: u8) -> u64 {
        let mut hasher = DefaultHasher::new();
        (salt, &self.name).hash(&mut hasher);
        hasher.finish()
    }

    fn tags_entry(&self) -> Value {
        let digest: String = (0..4).map(|i| format!("{:016x}", self.hash(i))).collect();
        json!({"name": self.name, "model": self.name, "modified_at": MODIFIED_AT,
               "size": 1_000_000_000 + self.hash(4) % 4_000_000_000, "digest": digest,
               "details": self.details()})
    }
}

/// How the fake behaves; `Default` gives one model per capability mix a gateway cares about.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub models: Vec<FakeModel>,
    /// `OLLAMA_NUM_PARALLEL`: generations that may run at once.
    pub parallel: usize,
    /// `OLLAMA_MAX_QUEUE`: requests that may wait for a slot; one more gets a 503.
    pub max_queue: usize,
    /// Model load plus prompt processing: nothing, not even headers, is sent meanwhile.
    pub first_token_delay: Duration,
    pub token_delay: Duration,
    /// What `/api/version` reports.
    pub version: &'static str,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            models: vec![
                FakeModel::new("llama3.2:latest", &["completion", "tools"]),
                FakeModel::new("qwen3:8b", &["completion", "tools", "thinking"]),
                FakeModel::new("llava:7b", &["completion", "vision"]),
                FakeModel::new("all-minilm:latest", &["embedding"]),
            ],
            parallel: 1,
            max_queue: 512,
            first_token_delay: Duration::ZERO,
            token_delay: Duration::from_millis(1),
            version: "0.33.0",
        }
    }
}

/// What the fake saw and did; the lists hold prompts (last user message) in event order.
#[derive(Debug, Default)]
struct Log {
    chat_requests: Vec<Value>,
    /// `/api/generate` and `/api/embed` bodies, in arrival order.
    generate_requests: Vec<Value>,
    embed_requests: Vec<Value>,
    /// Models that generated or embedded, for `/api/ps`.
    loaded: Vec<String>,
    started: Vec<String>,
    finished: Vec<String>,
    cancelled: Vec<String>,
    running: usize,
    max_concurrent: usize,
    queued: usize,
}

#[derive(Debug)]
struct Shared {
    config: FakeConfig,
    /// Ollama's scheduler slots; a generation holds one until it ends or its client leaves.
    slots: Arc<Semaphore>,
    /// Gate for `#hold`: `release_one` adds a permit, `release` closes it for good.
    holds: Semaphore,
    log: Mutex<Log>,
    /// Bumped after every change to `log`, so tests can await a condition without polling.
    changed: watch::Sender<()>,
    /// Cancelled by `stop`: the listener closes and every running generation aborts.
    shutdown: CancellationToken,
}

impl Shared {
    fn record<R>(&self, change: impl FnOnce(&mut Log) -> R) -> R {
        let result = change(&mut self.log.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.send_replace(());
        result
    }

    fn read<R>(&self, query: impl FnOnce(&Log) -> R) -> R {
        query(&self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn wait_until(&self, condition: impl Fn(&Log) -> bool) {
        // `self.changed` lives as long as `self`, so the channel cannot close under us.
        let _ = self
            .changed
            .subscribe()
            .wait_for(|()| self.read(&condition))
            .await;
    }

    /// Finds a model by its installed name, or by that name without `:latest`.
    fn model(&self, name: &str) -> Option<&FakeModel> {
        let tagged = with_tag(name);
        self.config
            .models
            .iter()
            .find(|m| m.name == name || m.name == tagged)
    }
}

/// A fake Ollama on `127.0.0.1`; it serves until [`FakeOllama::stop`] or the runtime ends.
#[derive(Debug)]
pub struct FakeOllama {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeOllama {
    #[allow(
        clippy::expect_used,
        reason = "test support: a fake that cannot listen fails the test"
    )]
    pub async fn start(config: FakeConfig) -> FakeOllama {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Ollama");
        let addr = listener
            .local_addr()
            .expect("read the fake Ollama's address");
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(config.parallel.max(1))),
            holds: Semaphore::new(0),
            log: Mutex::default(),
            changed: watch::Sender::new(()),
            shutdown: CancellationToken::new(),
            config,
        });
        let app = router(Arc::clone(&shared));
        let shutdown = shared.shutdown.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            // An accept error ends the fake like a dead Ollama: connections are then refused.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        FakeOllama {
            shared,
            addr,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `/api/chat` body in arrival order, invalid ones included (unparsable as strings).
    pub fn chat_requests(&self) -> Vec<Value> {
        self.shared.read(|log| log.chat_requests.clone())
    }

    /// Prompts of the generations that got a slot, in the order they got it.
    pub fn started(&self) -> Vec<String> {
        self.shared.read(|log| log.started.clone())
    }

    pub async fn wait_started(&self, n: usize) {
        self.shared.wait_until(|log| log.started.len() >= n).await;
    }

    /// Prompts of the generations that produced their `done:true` object.
    pub fn finished(&self) -> Vec<String> {
        self.shared.read(|log| log.finished.clone())
    }

    /// Prompts of the generations whose client went away before the end.
    pub fn cancelled(&self) -> Vec<String> {
        self.shared.read(|log| log.cancelled.clone())
    }

    pub async fn wait_cancelled(&self, n: usize) {
        self.shared.wait_until(|log| log.cancelled.len() >= n).await;
    }

    pub fn max_concurrent(&self) -> usize {
        self.shared.read(|log| log.max_concurrent)
    }

    /// Lets every `#hold` generation, current and future, go on.
    pub fn release(&self) {
        self.shared.holds.close();
    }

    /// Stops like a killed Ollama: the port refuses connections and open streams are cut.
    pub async fn stop(&mut self) {
        self.shared.shutdown.cancel();
        // Generations abort on the same token, so the graceful shutdown (which also closes
        // idle keep-alive connections) ends at once; the timeout only guards a broken test.
        if tokio::time::timeout(Duration::from_secs(5), &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let reported = json!({ "version": shared.config.version }).to_string();
    let version = move || {
        let reported = reported.clone();
        async move { respond(StatusCode::OK, JSON, reported) }
    };
    let not_found = || async { respond(StatusCode::NOT_FOUND, TEXT, "404 page not found") };
    let bad_method = || async {
        respond(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "405 method not allowed",
        )
    };
    Router::new()
        .route(
            "/",
            get(|| async { respond(StatusCode::OK, TEXT, "Ollama is running") }),
        )
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(ide::generate))
        .route("/api/embed", post(ide::embed))
        .route("/api/ps", get(ide::ps))
        .fallback(not_found)
        .method_not_allowed_fallback(bad_method)
        // Ollama takes base64 images of any size.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn tags(State(shared): State<Arc<Shared>>) -> Response {
    let models = shared.config.models.iter().map(FakeModel::tags_entry);
    json_body(
        StatusCode::OK,
        &json!({"models": models.collect::<Vec<_>>()}),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShowRequest {
    model: Option<String>,
    /// The legacy spelling of `model`.
    name: Option<String>,
}

async fn show(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, Refusal> {
    let request: ShowRequest = decode(&parse_body(&body)?)?;
    let name = request
        .model
        .filter(|n| !n.is_empty())
        .or(request.name)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(bad_request("model is required"));
    }
    // Unlike chat, show reports the name normalised with its tag.
    let missing = format!("model '{}' not found", with_tag(&name));
    let model = shared
        .model(&name)
        .ok_or(Refusal(StatusCode::NOT_FOUND, missing))?;
    let mut model_info = Map::new();
    model_info.insert("general.architecture".to_owned(), json!(model.family));
    let context_key = format!("{}.context_length", model.family);
    model_info.insert(context_key, json!(model.context_length));
    model_info.insert("general.basename".to_owned(), json!(model.family));
    let show = json!({"license": "", "modelfile": format!("FROM {}\n", model.name),
                      "parameters": "stop                           \"<|eot_id|>\"",
                      "template": ide::template(model), "details": model.details(),
                      "model_info": model_info, "capabilities": model.capabilities,
                      "modified_at": MODIFIED_AT});
    Ok(json_body(StatusCode::OK, &show))
}
