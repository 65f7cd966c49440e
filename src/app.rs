//! Builds and runs the system: key store, Ollama client, queue, worker and HTTP server.
//! `main` and the integration tests both go through [`App::build`], so the code under test is
//! the code that runs.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::auth::{KeyStore, Role, StoreError};
use crate::catalog::ModelCatalog;
use crate::config::{Config, ConfigError};
use crate::ollama::{OllamaClient, OllamaError};
use crate::queue::embedded::EmbeddedQueue;
use crate::queue::{JobQueue, QueueSnapshot};
use crate::worker::Worker;

/// How long running generations may take to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the system could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Invalid settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Ollama client could not be built.
    #[error(transparent)]
    Ollama(#[from] OllamaError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The requested mode is not available in this build.
    #[error("{0}")]
    Unsupported(String),
}

/// A running Seadragon: HTTP server plus worker, on the embedded queue.
#[derive(Debug)]
pub struct App {
    addr: SocketAddr,
    queue: EmbeddedQueue,
    created_admin_key: Option<String>,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    worker: JoinHandle<()>,
}

impl App {
    /// Opens the key store, binds the listener (port 0 picks one) and starts serving.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        if config.amqp_url.is_some() {
            return Err(StartError::Unsupported(
                "SEADRAGON_AMQP_URL is set, but this build serves only the embedded queue; unset it".into(),
            ));
        }
        let top_tier = config.top_tier().name.clone();
        let mut keys = KeyStore::connect(&config.database_url).await?;
        if let Some(secret) = &config.admin_key {
            keys = keys.with_bootstrap_admin(secret, &top_tier);
        }
        let created_admin_key = if config.admin_key.is_none() && !keys.has_active_admin().await? {
            Some(keys.create("admin", &top_tier, Role::Admin).await?.1)
        } else {
            None
        };

        let ollama = OllamaClient::new(config.ollama_url.clone())?;
        if let Err(e) = ollama.version().await {
            tracing::warn!("{e}; requests will get 503 until it answers (see /api/health)");
        }
        let max_queued: HashMap<String, usize> = config
            .tiers
            .iter()
            .map(|t| (t.name.clone(), t.max_queued))
            .collect();
        let queue = EmbeddedQueue::new(config.aging_interval, max_queued);
        let state = AppState {
            queue: Arc::new(queue.clone()) as Arc<dyn JobQueue>,
            keys: keys.clone(),
            catalog: Arc::new(ModelCatalog::new(
                ollama.clone(),
                keys,
                config.aliases.clone(),
            )),
            ollama: ollama.clone(),
            tiers: Arc::new(
                config
                    .tiers
                    .iter()
                    .map(|t| (t.name.clone(), t.clone()))
                    .collect(),
            ),
            keepalive: config.keepalive_interval,
            stats: Arc::default(),
        };

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let shutdown = CancellationToken::new();
        let router = api::router(state, config.max_body_bytes);
        let server = tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .into_future(),
        );
        let worker_name = format!("embedded-{}", addr.port());
        let worker = Worker::new(Arc::new(queue.clone()), ollama, config.slots, worker_name);
        let worker = tokio::spawn(worker.run(shutdown.clone()));
        tracing::info!(%addr, slots = config.slots, "Seadragon listening on http://{addr}");
        Ok(Self {
            addr,
            queue,
            created_admin_key,
            shutdown,
            server,
            worker,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin key created at this start, when the store had none (to be shown once).
    pub fn created_admin_key(&self) -> Option<&str> {
        self.created_admin_key.as_deref()
    }

    /// Queue depth per tier and running jobs.
    pub fn queue_snapshot(&self) -> QueueSnapshot {
        self.queue.snapshot()
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()>) {
        tokio::select! {
            () = signal => tracing::info!("shutting down"),
            () = self.shutdown.cancelled() => {}
        }
        self.stop().await;
    }

    /// Stops accepting work, fails queued jobs, lets running ones finish (bounded), and ends.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.queue.close();
        let drain = async {
            let _ = self.worker.await;
            let _ = self.server.await;
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::warn!(
                "running requests did not finish within {DRAIN_TIMEOUT:?}; stopping anyway"
            );
        }
    }
}
