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

pub(crate) mod board;
pub mod embedded;
pub mod priority;
pub mod rabbitmq;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::openai::{Delta, Usage};

pub use board::{JobBoard, RunningJob, WorkerSeen};

/// A chat generation waiting for, or running on, a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Unique id (`job_...`).
    pub id: String,
    /// Tier of the caller's key.
    pub tier: String,
    /// Level the job starts at (tier priority, lowered for flex work).
    pub base_level: u8,
    /// Id of the caller's key, for admin views.
    pub key_id: String,
    /// Installed model the job runs on.
    pub model: String,
    /// Ollama's native `/api/chat` body, serialized once by the gateway: queued jobs stay
    /// small, workers send it as it is, and copies of the job (a worker's first call, a
    /// re-published copy) share it, however large its images.
    pub body: Arc<serde_json::value::RawValue>,
    /// How long the job may wait in the queue before it fails without running.
    pub max_wait: Duration,
    /// Unix milliseconds when the gateway accepted it; with `max_wait`, how long a worker may
    /// keep retrying an Ollama that is down or busy.
    pub enqueued_at_ms: u64,
}

/// What the client's ticket learns about a job, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    /// A worker's claim was granted; it is calling Ollama. Reported by the queue backend at
    /// the grant, never sent by the worker.
    Started {
        /// The worker's name.
        worker: String,
        /// Generations the worker runs at once.
        slots: usize,
    },
    /// Part of the answer.
    Delta(Delta),
    /// The answer is complete.
    Finished {
        /// OpenAI finish reason.
        finish_reason: String,
        /// Token counts.
        usage: Usage,
    },
    /// The job failed; nothing more follows.
    Failed(JobFailure),
}

/// Why a job failed, with the HTTP status a client should see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// HTTP status (400 bad request to Ollama, 404 unknown model, 503 unavailable, ...).
    pub status: u16,
    /// Message for the client.
    pub message: String,
}

impl Job {
    /// Time left of the job's allowed wait (zero when it is used up).
    pub fn wait_left(&self) -> Duration {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let waited = Duration::from_millis(now_ms.saturating_sub(self.enqueued_at_ms));
        self.max_wait.saturating_sub(waited)
    }
}

impl JobFailure {
    /// A failure with this status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

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

    /// How many jobs would be dispatched before this one; `None` once it runs or is gone.
    fn position(&self, job_id: &str) -> Option<usize>;

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
}

/// A job handed to a worker, not yet claimed.
#[async_trait]
pub trait Delivery: Send + std::fmt::Debug {
    /// The job.
    fn job(&self) -> &Job;

    /// Asks the job's owner for the right to run it on `worker`, which runs up to `slots` jobs
    /// at once. A granted claim reports the start (`JobEvent::Started`) to the client itself.
    /// `None` when denied; the job is then acknowledged and dropped, so nothing is generated
    /// for nobody.
    async fn claim(self: Box<Self>, worker: &str, slots: usize) -> Option<Box<dyn Assignment>>;
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

/// The gateway's handle on a submitted job. Dropping it cancels the job.
#[derive(Debug)]
pub struct JobTicket {
    job: Arc<Job>,
    events: TicketEvents,
    /// Cancels the running job when the ticket is dropped (backends that open events on claim).
    _cancel_running: Option<tokio_util::sync::DropGuard>,
    board: Arc<JobBoard>,
    submitted: Instant,
    report: JobReport,
    on_end: OnEnd,
    _cancel_on_drop: CancelOnDrop,
}

/// Where a ticket reads its job's events from.
#[derive(Debug)]
pub enum TicketEvents {
    /// The events flow through this channel from submission on.
    Open(mpsc::Receiver<JobEvent>),
    /// The backend opens the channel when a worker claims the job, so a queued job holds no
    /// event buffer; a job that fails before any claim sends its failure instead.
    OnClaim(oneshot::Receiver<Result<Claimed, JobFailure>>),
    /// A failure before the claim was delivered; nothing more follows.
    Ended,
}

/// What a ticket receives when a worker claims its job (see [`TicketEvents::OnClaim`]).
#[derive(Debug)]
pub struct Claimed {
    /// The job's events from now on.
    pub events: mpsc::Receiver<JobEvent>,
    /// Cancelled when the ticket is dropped, so the worker stops generating.
    pub cancel: CancellationToken,
}

/// How a job went, as its ticket saw it; given to [`JobTicket::on_end`] when the ticket is
/// dropped, i.e. when the gateway is done with the request, whatever the path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    /// From submission to the worker's start; `None` when the job never started.
    pub queue_wait: Option<Duration>,
    /// From submission to the first delta; `None` when none came.
    pub first_token: Option<Duration>,
    /// From the worker's start to the finished answer.
    pub generation: Option<Duration>,
    /// Token counts of a finished job.
    pub usage: Option<Usage>,
    /// How it ended.
    pub end: JobEnd,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobEnd {
    /// The gateway let go before a final event: the client left.
    #[default]
    Abandoned,
    /// The answer is complete.
    Finished,
    /// The job failed with this HTTP status (cleared, expired, Ollama errors, ...).
    Failed(u16),
    /// The events stopped without a final one (a worker lost beyond recovery).
    Lost,
}

impl JobTicket {
    /// A ticket reading `events` of `job`; `on_drop` runs when the gateway lets go of the job.
    pub fn new(
        job: Arc<Job>,
        events: TicketEvents,
        board: Arc<JobBoard>,
        on_drop: impl FnOnce() + Send + Sync + 'static,
    ) -> Self {
        Self {
            job,
            events,
            _cancel_running: None,
            board,
            submitted: Instant::now(),
            report: JobReport::default(),
            on_end: OnEnd(None),
            _cancel_on_drop: CancelOnDrop(Some(Box::new(on_drop))),
        }
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.job.id
    }

    /// Calls `report` once with how the job went, when the ticket is dropped.
    pub fn on_end(&mut self, report: impl FnOnce(&JobReport) + Send + Sync + 'static) {
        self.on_end = OnEnd(Some(Box::new(report)));
    }

    /// The next event; `None` when the job ended without a final event (e.g. a worker crash
    /// the backend could not recover from).
    pub async fn next_event(&mut self) -> Option<JobEvent> {
        let event = self.receive().await;
        match &event {
            Some(JobEvent::Started { worker, slots }) => {
                self.board.started(&self.job, worker, *slots);
                self.report.queue_wait = Some(self.submitted.elapsed());
            }
            Some(JobEvent::Delta(_)) => {
                self.board.token(&self.job.id);
                if self.report.first_token.is_none() {
                    self.report.first_token = Some(self.submitted.elapsed());
                }
            }
            Some(JobEvent::Finished { usage, .. }) => {
                self.board.ended(&self.job.id);
                (self.report.usage, self.report.end) = (Some(*usage), JobEnd::Finished);
                self.report.generation = self
                    .report
                    .queue_wait
                    .map(|wait| self.submitted.elapsed().saturating_sub(wait));
            }
            Some(JobEvent::Failed(failure)) => {
                self.board.ended(&self.job.id);
                self.report.end = JobEnd::Failed(failure.status);
            }
            None => {
                self.board.ended(&self.job.id);
                self.report.end = JobEnd::Lost;
            }
        }
        event
    }

    /// Reads the next event, first waiting for the claim where the backend opens events then.
    /// Cancel-safe: a claim that arrives stays in the oneshot until it is read.
    async fn receive(&mut self) -> Option<JobEvent> {
        loop {
            match &mut self.events {
                TicketEvents::Open(events) => return events.recv().await,
                TicketEvents::Ended => return None,
                TicketEvents::OnClaim(claim) => match claim.await {
                    Ok(Ok(claimed)) => {
                        self._cancel_running = Some(claimed.cancel.drop_guard());
                        self.events = TicketEvents::Open(claimed.events);
                    }
                    Ok(Err(failure)) => {
                        self.events = TicketEvents::Ended;
                        return Some(JobEvent::Failed(failure));
                    }
                    Err(_) => {
                        self.events = TicketEvents::Ended;
                        return None;
                    }
                },
            }
        }
    }
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        // A claim that arrived but was never read still has a worker to stop.
        if let TicketEvents::OnClaim(claim) = &mut self.events
            && let Ok(Ok(claimed)) = claim.try_recv()
        {
            claimed.cancel.cancel();
        }
        self.board.ended(&self.job.id);
        if let Some(report) = self.on_end.0.take() {
            report(&self.report);
        }
    }
}

/// What [`JobTicket::on_end`] runs.
type EndReport = Box<dyn FnOnce(&JobReport) + Send + Sync>;

struct OnEnd(Option<EndReport>);

impl std::fmt::Debug for OnEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnEnd")
    }
}

struct CancelOnDrop(Option<Box<dyn FnOnce() + Send + Sync>>);

impl std::fmt::Debug for CancelOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CancelOnDrop")
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            cancel();
        }
    }
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
}

impl QueueSnapshot {
    /// Total queued jobs across tiers.
    pub fn queued(&self) -> usize {
        self.tiers.iter().map(|t| t.queued).sum()
    }
}
