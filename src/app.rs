//! Builds and runs the system for one role: key store, catalog, queue backend, worker and
//! HTTP server. `main` and the integration tests both go through [`App::build_role`], so the
//! code under test is the code that runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::auth::{KeyStore, Role as KeyRole, StoreError};
use crate::catalog::{ModelCatalog, ModelSource};
use crate::config::{Config, ConfigError, TierConfig};
use crate::limits::Limits;
use crate::ollama::{OllamaClient, OllamaError};
use crate::queue::embedded::EmbeddedQueue;
use crate::queue::rabbitmq::{RabbitConfig, RabbitGateway, RabbitWorker};
use crate::queue::{JobQueue, QueuePolicy, QueueSnapshot, WorkQueue};
use crate::worker::Worker;

/// Which parts of the system this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Gateway and worker in one process.
    Serve,
    /// HTTP only; jobs go to RabbitMQ.
    Gateway,
    /// Jobs from RabbitMQ to Ollama; serves health only.
    Worker,
}

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
    /// The role needs a setting that is missing.
    #[error("{0}")]
    Unsupported(String),
}

/// The queue backend of this process, kept to close it at shutdown.
#[derive(Debug)]
enum Backend {
    Embedded(EmbeddedQueue),
    Rabbit {
        gateway: Option<RabbitGateway>,
        worker: Option<RabbitWorker>,
    },
}

/// A running Seadragon process.
#[derive(Debug)]
pub struct App {
    addr: SocketAddr,
    backend: Backend,
    jobs: Option<Arc<dyn JobQueue>>,
    created_admin_key: Option<String>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    drain_timeout: Duration,
    server: JoinHandle<()>,
    worker: Option<JoinHandle<()>>,
}

impl App {
    /// Starts `seadragon serve` with this configuration.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_role(config, Role::Serve).await
    }

    /// Opens what the role needs, binds the listener (port 0 picks one) and starts serving.
    pub async fn build_role(config: Config, role: Role) -> Result<Self, StartError> {
        config.validate()?;
        let rabbit = match (&config.amqp_url, role) {
            (Some(url), _) => Some(RabbitConfig::new(url, &config.amqp_prefix)),
            (None, Role::Serve) => None,
            (None, _) => {
                return Err(StartError::Unsupported(
                    "the gateway and worker roles need SEADRAGON_AMQP_URL (a RabbitMQ URL)".into(),
                ));
            }
        };
        let policy = config.queue_policy();
        let slots = u16::try_from(config.slots).unwrap_or(u16::MAX);
        let Queues {
            backend,
            jobs,
            work,
        } = open_queues(rabbit, role, policy, slots);

        let ollama = OllamaClient::new(config.ollama_url.clone())?;
        if role != Role::Gateway
            && let Err(e) = ollama.version().await
        {
            tracing::warn!("{e}; requests will get 503 until it answers (see /api/health)");
        }
        let shutdown = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let worker_queue = work.clone();
        let worker = work.map(|work| {
            let name = format!("{}-{}", hostname(), crate::ids::random_alphanumeric(6));
            let worker = Worker::new(
                work,
                ollama.clone(),
                config.slots,
                name,
                config.generation_timeout,
            );
            tokio::spawn(worker.run(shutdown.clone()))
        });

        let mut created_admin_key = None;
        let router = match &jobs {
            Some(jobs) => {
                let keys = open_keys(&config).await?;
                created_admin_key = bootstrap_admin(&config, &keys).await?;
                let source = match (&backend, role) {
                    (
                        Backend::Rabbit {
                            gateway: Some(g), ..
                        },
                        Role::Gateway,
                    ) => ModelSource::Workers(Arc::new(g.clone())),
                    _ => ModelSource::Ollama(ollama.clone()),
                };
                let limits = Arc::new(Limits::new(&config.tiers));
                tokio::spawn(forget_idle_keys(Arc::downgrade(&limits), shutdown.clone()));
                let state = AppState {
                    limits,
                    hard_stop: hard_stop.clone(),
                    queue: Arc::clone(jobs),
                    keys: keys.clone(),
                    catalog: Arc::new(ModelCatalog::new(source, keys, config.aliases.clone())),
                    tiers: Arc::new(
                        config
                            .tiers
                            .iter()
                            .map(|t| {
                                // Admin views show each tier's starvation time, default or not.
                                let starvation = t.starvation(config.default_starvation);
                                let tier = TierConfig {
                                    starvation_secs: Some(starvation.as_secs_f64()),
                                    ..t.clone()
                                };
                                (t.name.clone(), tier)
                            })
                            .collect(),
                    ),
                    keepalive: config.keepalive_interval,
                    stats: Arc::default(),
                };
                api::router(state, config.max_body_bytes)
            }
            None => {
                let work = worker_queue.ok_or_else(|| {
                    StartError::Unsupported("a process runs a gateway, a worker or both".into())
                })?;
                api::worker_router(ollama.clone(), work)
            }
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
        let server = tokio::spawn(crate::http_server::serve(
            listener,
            router,
            shutdown.clone(),
            crate::http_server::HEADER_TIMEOUT,
        ));
        tracing::info!(%addr, slots = config.slots, ?role, "Seadragon listening on http://{addr}");
        Ok(Self {
            addr,
            backend,
            jobs,
            created_admin_key,
            shutdown,
            hard_stop,
            drain_timeout: config.drain_timeout,
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

    /// Queue depth per tier and running jobs, as this process sees them.
    pub fn queue_snapshot(&self) -> QueueSnapshot {
        self.jobs.as_ref().map(|j| j.snapshot()).unwrap_or_default()
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()>) {
        tokio::select! {
            () = signal => tracing::info!("shutting down"),
            () = self.shutdown.cancelled() => {}
        }
        self.stop().await;
    }

    /// Stops accepting work, fails queued jobs (a worker's pulled, unclaimed ones go back to the
    /// broker), lets running generations finish within the drain timeout, then closes what is
    /// left with an error event rather than silently.
    pub async fn stop(self) {
        self.shutdown.cancel();
        match &self.backend {
            Backend::Embedded(queue) => queue.close(),
            Backend::Rabbit {
                gateway: Some(g), ..
            } => g.drain(),
            Backend::Rabbit { gateway: None, .. } => {}
        }
        let mut worker = self.worker;
        let mut server = self.server;
        let drained = tokio::time::timeout(self.drain_timeout, async {
            if let Some(worker) = worker.as_mut() {
                let _ = worker.await;
            }
            let _ = (&mut server).await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "running requests did not finish within {:?}; closing them",
                self.drain_timeout
            );
            self.hard_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
        }
        if let Backend::Rabbit { gateway, worker } = &self.backend {
            if let Some(g) = gateway {
                g.close();
            }
            if let Some(w) = worker {
                w.close();
            }
        }
    }
}

/// The two sides of the queue this role uses.
struct Queues {
    backend: Backend,
    jobs: Option<Arc<dyn JobQueue>>,
    work: Option<Arc<dyn WorkQueue>>,
}

fn open_queues(
    rabbit: Option<RabbitConfig>,
    role: Role,
    policy: QueuePolicy,
    slots: u16,
) -> Queues {
    let Some(rabbit) = rabbit else {
        let queue = EmbeddedQueue::new(policy);
        return Queues {
            backend: Backend::Embedded(queue.clone()),
            jobs: Some(Arc::new(queue.clone())),
            work: Some(Arc::new(queue)),
        };
    };
    let gateway = (role != Role::Worker).then(|| RabbitGateway::start(rabbit.clone(), policy));
    let worker = (role != Role::Gateway).then(|| {
        let mut config = rabbit.clone();
        config.instance = format!("{}-w", rabbit.instance);
        RabbitWorker::start(config, slots)
    });
    Queues {
        jobs: gateway.clone().map(|g| Arc::new(g) as Arc<dyn JobQueue>),
        work: worker.clone().map(|w| Arc::new(w) as Arc<dyn WorkQueue>),
        backend: Backend::Rabbit { gateway, worker },
    }
}

async fn open_keys(config: &Config) -> Result<KeyStore, StartError> {
    let mut keys = KeyStore::connect(&config.database_url).await?;
    if let Some(secret) = &config.admin_key {
        keys = keys.with_bootstrap_admin(secret, &config.top_tier().name);
    }
    Ok(keys)
}

/// Creates the first admin key when none is configured or stored.
async fn bootstrap_admin(config: &Config, keys: &KeyStore) -> Result<Option<String>, StartError> {
    if config.admin_key.is_some() || keys.has_active_admin().await? {
        return Ok(None);
    }
    let (_, secret) = keys
        .create("admin", &config.top_tier().name, KeyRole::Admin)
        .await?;
    Ok(Some(secret))
}

/// Drops the rate state of keys that have been quiet for a while, so it cannot grow forever.
async fn forget_idle_keys(limits: std::sync::Weak<Limits>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        match limits.upgrade() {
            Some(limits) => limits.retain_recent(),
            None => return,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}
