//! What travels through the queue: a [`Job`], the [`JobEvent`]s of its answer, and why it
//! failed ([`JobFailure`]).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::openai::{Delta, Usage};

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
