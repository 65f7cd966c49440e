//! The job queue: the contract between gateways and workers, whatever carries the jobs.
//!
//! The gateway side ([`JobQueue`]) submits a [`Job`] and reads its [`JobEvent`]s through a
//! [`JobTicket`]; dropping the ticket cancels the job wherever it is. The worker side
//! ([`WorkQueue`]) takes the next job in priority order as a [`Delivery`], claims it from its
//! owner (granted once, denied if the client left, the job expired or another copy won), sends
//! events through the resulting [`Assignment`] and finally acknowledges it.
//!
//! The traits are object-safe through `async_trait` because the backend is chosen at start-up
//! (embedded or RabbitMQ) and the rest of the system holds `Arc<dyn ...>` handles.
//!
//! - [`job`]: what travels (the job, its events, its failure);
//! - [`ticket`]: the gateway's handle on one job;
//! - [`schedule`]: the scheduling rule (levels, rationed rescues, predicted waits) as pure
//!   arithmetic; [`policy`]: its settings; [`pacing`]: the rule for clients that stop reading;
//! - [`embedded`] and [`rabbitmq`]: the two backends; [`board`]: running jobs and workers.

pub(crate) mod board;
pub mod embedded;
pub mod job;
pub mod ledger;
pub mod pacing;
pub mod policy;
pub mod rabbitmq;
pub mod schedule;
pub mod ticket;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use board::{JobBoard, RunningJob, WorkerSeen};
pub use job::{Job, JobEvent, JobFailure, JobKind};
pub use policy::{QueuePolicy, TierRule};
pub use ticket::{Claimed, JobEnd, JobReport, JobTicket, TicketEvents};

/// Errors of the queue itself (not of the job).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The tier already has its maximum of queued jobs.
    #[error("the {tier} tier already has {max_queued} queued requests")]
    TierFull {
        /// The tier.
        tier: String,
        /// Its limit.
        max_queued: usize,
    },
    /// The job would wait longer than its tier allows, judging by the queue ahead of it and
    /// the recent dispatch rate: refused now rather than failed at its deadline.
    #[error(
        "the {tier} tier's queue is too long: the predicted wait of {} s exceeds its limit of {} s",
        wait.as_secs(),
        max_wait.as_secs()
    )]
    WouldWait {
        /// The tier.
        tier: String,
        /// The predicted wait.
        wait: Duration,
        /// The tier's limit.
        max_wait: Duration,
    },
    /// The queue is shutting down.
    #[error("the queue is shutting down")]
    Closed,
    /// The client of this job is gone; stop working on it.
    #[error("the client of this job is gone")]
    ClientGone,
    /// The queue cannot take work now (broker down or blocking publishers).
    #[error("{0}")]
    Unavailable(String),
}

/// Gateway side: submit jobs and follow them.
#[async_trait]
pub trait JobQueue: Send + Sync + std::fmt::Debug {
    /// Admits and queues a job. Refused when its tier is full or the queue is closed.
    async fn submit(&self, job: Job) -> Result<JobTicket, QueueError>;

    /// Where a queued job stands; `None` once it runs or is gone.
    fn standing(&self, job_id: &str) -> Option<JobStanding>;

    /// The rescue share and dispatch rate in use.
    fn scheduling(&self) -> SchedulingView;

    /// Queue depth and oldest wait per tier.
    fn snapshot(&self) -> QueueSnapshot;

    /// Fails every queued job (of one tier, or all) with a clean error; returns how many.
    fn clear(&self, tier: Option<&str>) -> usize;

    /// This gateway's running jobs and the workers that ran them.
    fn board(&self) -> &JobBoard;

    /// Running jobs of the whole system, oldest first: this gateway's, and those other
    /// gateways report (RabbitMQ).
    fn running(&self) -> Vec<RunningJob> {
        self.board().running()
    }

    /// Workers by name: those that ran this gateway's jobs and, over RabbitMQ, every worker
    /// announcing itself, with the jobs of [`running`](Self::running) each runs.
    fn workers_seen(&self) -> Vec<WorkerSeen> {
        self.board().workers()
    }

    /// Whether the backend can take work now.
    fn health(&self) -> BackendHealth;
}

/// A backend's readiness, for `/api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendHealth {
    /// `embedded` or `rabbitmq`.
    pub backend: &'static str,
    /// Whether new jobs are accepted.
    pub ok: bool,
    /// What is wrong, or details when fine.
    pub detail: String,
}

/// Worker side: take jobs in priority order.
#[async_trait]
pub trait WorkQueue: Send + Sync + std::fmt::Debug {
    /// Waits for the next job in priority order; `Err(Closed)` when the queue shuts down.
    async fn next(&self) -> Result<Box<dyn Delivery>, QueueError>;

    /// Whether gateways learn this worker's models from [`WorkQueue::announce`]; only
    /// distributed backends need it, so in-process workers skip asking Ollama for them.
    fn wants_announcements(&self) -> bool {
        false
    }

    /// Tells the gateways what this worker offers.
    async fn announce(&self, _announcement: &WorkerAnnouncement) {}

    /// Whether this worker can take jobs now (its broker session, for a distributed backend).
    fn health(&self) -> BackendHealth {
        BackendHealth {
            backend: "embedded",
            ok: true,
            detail: "in process".to_owned(),
        }
    }
}

/// What a worker offers: its name and slots, its Ollama's models and whether that Ollama answers.
#[derive(Debug, Clone)]
pub struct WorkerAnnouncement {
    /// The worker's name, the one its claims carry.
    pub worker: String,
    /// Generations it runs at once, as its claims say.
    pub slots: usize,
    /// `/api/tags` entries, as JSON.
    pub models: Vec<serde_json::Value>,
    /// Whether the last check of Ollama succeeded.
    pub ollama_ok: bool,
    /// The models its Ollama has loaded (`/api/ps` entries, as JSON).
    pub loaded: Vec<serde_json::Value>,
}

/// A job handed to a worker, not yet claimed.
#[async_trait]
pub trait Delivery: Send + std::fmt::Debug {
    /// The job.
    fn job(&self) -> &Job;

    /// Asks the job's owner for the right to run it on `worker`, which runs up to `slots` jobs
    /// at once. A granted claim reports the start (`JobEvent::Started`) to the client itself.
    /// The worker calls Ollama only after a grant, so an abandoned job never reaches it.
    async fn claim(self: Box<Self>, worker: &str, slots: usize) -> Claim;
}

/// How a claim ended. Each outcome leaves the job somewhere different, so they are kept apart.
#[derive(Debug)]
pub enum Claim {
    /// The owner granted it: run it, then [`Assignment::finish`] it.
    Granted(Box<dyn Assignment>),
    /// The owner refused it (client gone, job expired, another copy won): it was acknowledged
    /// and dropped, so nothing is generated for nobody.
    Denied,
    /// No answer for a broker reason (timeout, connection lost, alarm): the job went back to
    /// the queue for another try, never acknowledged away.
    Failed(QueueError),
}

impl Claim {
    /// The assignment of a granted claim.
    pub fn granted(self) -> Option<Box<dyn Assignment>> {
        match self {
            Self::Granted(assignment) => Some(assignment),
            Self::Denied | Self::Failed(_) => None,
        }
    }
}

/// A claimed job: the worker runs it and reports back.
#[async_trait]
pub trait Assignment: Send + std::fmt::Debug {
    /// The job.
    fn job(&self) -> &Job;

    /// Sends one event to the client. `Err(ClientGone)` means: stop generating.
    async fn send(&mut self, event: JobEvent) -> Result<(), QueueError>;

    /// Cancelled when the client goes away, so the worker can drop the Ollama request at once.
    fn cancelled(&self) -> CancellationToken;

    /// Acknowledges the job after it finished, failed or was cancelled.
    async fn finish(self: Box<Self>);
}

/// Where a queued job stands, for keep-alives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobStanding {
    /// How many jobs the normal order dispatches before this one.
    pub position: usize,
    /// The predicted wait, counting rescues; `None` on a cold system.
    pub eta: Option<Duration>,
}

/// The scheduling rule at work, for admin views and metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulingView {
    /// The configured most of the dispatches that rescues may take.
    pub rescue_share: f64,
    /// The share of the last minute's dispatches that were rescues.
    pub recent_rescue_share: f64,
    /// Dispatches per second over the last minute; `None` before the first.
    pub throughput_per_sec: Option<f64>,
    /// Jobs this gateway rescued since it started, by tier.
    pub rescues: BTreeMap<String, u64>,
}

/// Queue state per tier, for admin views and health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    /// One entry per tier that has queued or running jobs.
    pub tiers: Vec<TierDepth>,
    /// Jobs claimed by workers and not finished.
    pub running: usize,
}

/// Depth of one tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierDepth {
    /// Tier name.
    pub tier: String,
    /// Jobs waiting.
    pub queued: usize,
    /// Wait of the oldest queued job, in seconds.
    pub oldest_wait_secs: f64,
    /// Jobs queued longer than the tier's starvation time.
    #[serde(default)]
    pub starving: usize,
}

impl QueueSnapshot {
    /// Total queued jobs across tiers.
    pub fn queued(&self) -> usize {
        self.tiers.iter().map(|t| t.queued).sum()
    }
}
