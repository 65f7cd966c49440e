//! What travels through the queue: a [`Job`] of some [`JobKind`], the [`JobEvent`]s of its
//! answer, and why it failed ([`JobFailure`]).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::openai::{Delta, Usage};

/// Which Ollama endpoint a job runs on. Every API (OpenAI chat, completions, embeddings,
/// responses, the Ollama facade) turns its request into one of these native bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// `/api/chat`, streamed.
    #[default]
    Chat,
    /// `/api/generate` (raw prompts, fill-in-the-middle), streamed.
    Generate,
    /// `/api/embed`, one answer.
    Embed,
}

/// A generation (or an embedding) waiting for, or running on, a worker.
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
    /// The Ollama endpoint it runs on: the API module that built the body says which.
    /// (Queued messages from before this field ran on `/api/chat` or carried `messages`;
    /// they default to chat.)
    #[serde(default)]
    pub kind: JobKind,
    /// Ollama's native body for the endpoint of `kind`, serialized once by the gateway:
    /// queued jobs stay small, workers send it as it is, and copies of the job (a worker's
    /// first call, a re-published copy) share it, however large its images.
    pub body: Arc<serde_json::value::RawValue>,
    /// How long the job may wait in the queue before it fails without running.
    pub max_wait: Duration,
    /// Unix milliseconds when the gateway accepted it; with `max_wait`, how long a worker may
    /// keep retrying an Ollama that is down or busy.
    pub enqueued_at_ms: u64,
}

/// What the client's ticket learns about a job, in order.
// Not `Eq`: embeddings are floats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The vectors of an embedding job; `Finished` follows. A struct variant: the events are
    /// internally tagged, which serde cannot do for a bare sequence.
    Embeddings {
        /// One vector per input, in input order.
        vectors: Vec<Vec<f32>>,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_the_wire() {
        // The RabbitMQ backend sends events as JSON; a variant serde cannot write is lost.
        let events = [
            JobEvent::Started {
                worker: "w".into(),
                slots: 1,
            },
            JobEvent::Delta(Delta::default()),
            JobEvent::Embeddings {
                vectors: vec![vec![0.5, -1.0]],
            },
            JobEvent::Finished {
                finish_reason: "stop".into(),
                usage: Usage::new(1, 2),
            },
            JobEvent::Failed(JobFailure::new(500, "x")),
        ];
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<JobEvent>(&json).unwrap(), event);
        }
    }

    #[test]
    fn a_job_message_without_a_kind_reads_as_chat() {
        let json = r#"{"id":"j","tier":"t","base_level":1,"key_id":"k","model":"m",
            "body":{"messages":[]},"max_wait":{"secs":1,"nanos":0},"enqueued_at_ms":0}"#;
        let job: Job = serde_json::from_str(json).unwrap();
        assert_eq!(job.kind, JobKind::Chat);
        let mut generate = job;
        generate.kind = JobKind::Generate;
        let back: Job = serde_json::from_str(&serde_json::to_string(&generate).unwrap()).unwrap();
        assert_eq!(back.kind, JobKind::Generate);
    }
}
