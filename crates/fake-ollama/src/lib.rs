//! A fake Ollama server (native API of v0.33), the one Seadragon's tests, benchmark and
//! scripts run against.
//!
//! It reproduces Ollama's native wire formats (API types, chat streaming, errors):
//! NDJSON streams whose headers only leave with the first object, one final `done:true`
//! object whose zero metrics are omitted, `{"error":"..."}` bodies with Ollama's status codes
//! and messages, gin's text 404/405, and Ollama's scheduler (`parallel` slots plus a bounded
//! queue that answers 503 when full). The first word of the last user message picks a
//! scripted scenario (`#tool`, `#hold`, `#abrupt`, `#long N`, ... see `script`) so that tests
//! can provoke each edge case of the protocol, and the fake records what it received and how
//! each generation ended.
//!
//! The benchmark uses the same server with many slots, recording off and a timing it changes
//! between phases ([`FakeOllama::set_timing`]); tokens then follow a fixed schedule from the
//! request's arrival, so a slow reader does not stretch a generation.
//!
//! - `config`: the models and knobs ([`FakeConfig`], [`FakeModel`]);
//! - `state`: what the fake saw and did, shared by the handlers;
//! - `script`: a chat request validated in Ollama's order and the scenario it names;
//! - `generation`: one generation holding a scheduler slot, token by token;
//! - `chat`: `/api/chat`, the scheduler's queue, streamed or aggregated answers;
//! - `objects`: the NDJSON objects in Ollama's field order;
//! - `ide`: `/api/generate`, `/api/embed`, `/api/ps`; `show`: `/api/tags` and `/api/show`;
//! - `wire`: gin's answers, Go's JSON decoding and time format.

mod chat;
mod config;
mod generation;
mod ide;
mod objects;
mod script;
mod show;
mod state;
mod wire;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

pub use config::{FakeConfig, FakeModel};
pub use script::{numbered_text, numbered_token};
use state::Shared;
use wire::{JSON, TEXT, respond};

/// A fake Ollama; it serves until [`FakeOllama::stop`] or the runtime ends.
#[derive(Debug)]
pub struct FakeOllama {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeOllama {
    /// Serves on a random port of `127.0.0.1`.
    #[allow(
        clippy::expect_used,
        reason = "test support: a fake that cannot listen fails the test"
    )]
    pub async fn start(config: FakeConfig) -> FakeOllama {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config)
            .await
            .expect("bind the fake Ollama")
    }

    /// Serves on `addr` (port 0 picks a free one).
    #[allow(
        clippy::unused_async,
        reason = "async so that it is called inside the runtime its server task needs"
    )]
    pub async fn bind(addr: SocketAddr, config: FakeConfig) -> io::Result<FakeOllama> {
        // A gateway opens a connection per concurrent generation, up to 1,000 at once in the
        // benchmark: a backlog deeper than the default 1,024 keeps a burst of connects from
        // being dropped and retried a second later, which would look like gateway latency.
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(8192)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let app = router(Arc::clone(&shared));
        let shutdown = shared.shutdown.clone().cancelled_owned();
        // Go's net/http sets TCP_NODELAY on every connection; without it small NDJSON lines
        // would wait for Nagle's algorithm.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            // An accept error ends the fake like a dead Ollama: connections are then refused.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Ok(FakeOllama {
            shared,
            addr,
            server,
        })
    }

    /// `http://ADDR`, for `SEADRAGON_OLLAMA_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the time to the first token and between tokens of later generations.
    pub fn set_timing(&self, first_token_delay: Duration, token_delay: Duration) {
        self.shared.timing.set(first_token_delay, token_delay);
    }

    /// Every `/api/chat` body in arrival order, invalid ones included (unparsable as strings).
    pub fn chat_requests(&self) -> Vec<Value> {
        self.shared.read(|log| log.chat_requests.clone())
    }

    /// Every `/api/generate` body in arrival order.
    pub fn generate_requests(&self) -> Vec<Value> {
        self.shared.read(|log| log.generate_requests.clone())
    }

    /// Every `/api/embed` body in arrival order.
    pub fn embed_requests(&self) -> Vec<Value> {
        self.shared.read(|log| log.embed_requests.clone())
    }

    /// Prompts of the generations that got a slot, in the order they got it.
    pub fn started(&self) -> Vec<String> {
        self.shared.read(|log| log.started.clone())
    }

    /// Waits until `n` generations got a slot.
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

    /// Waits until `n` generations were cancelled by their client.
    pub async fn wait_cancelled(&self, n: usize) {
        self.shared.wait_until(|log| log.cancelled.len() >= n).await;
    }

    /// The most generations that ran at once.
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
        .route("/api/tags", get(show::tags))
        .route("/api/show", post(show::show))
        .route("/api/chat", post(chat::chat))
        .route("/api/generate", post(ide::generate))
        .route("/api/embed", post(ide::embed))
        .route("/api/ps", get(ide::ps))
        .fallback(not_found)
        .method_not_allowed_fallback(bad_method)
        // Ollama takes base64 images of any size.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}
