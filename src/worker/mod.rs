//! Workers: take jobs in priority order, run them on Ollama and report back.
//!
//! A worker runs one loop per slot, so at most `slots` generations run at once: a loop takes a
//! job only when its previous one has ended, which is also what keeps priority meaningful (a job
//! is never pulled out of the queue before a slot can run it).

mod announce;
mod job;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ollama::OllamaClient;
use crate::queue::{Claim, QueueError, WorkQueue};
use crate::timeline::WorkerStamps;

/// A worker in front of one Ollama server.
#[derive(Debug, Clone)]
pub struct Worker {
    queue: Arc<dyn WorkQueue>,
    ollama: OllamaClient,
    slots: usize,
    name: String,
    limits: job::Limits,
}

impl Worker {
    /// A worker taking jobs from `queue` and running up to `slots` of them on `ollama`, each
    /// for at most `generation_timeout`.
    pub fn new(
        queue: Arc<dyn WorkQueue>,
        ollama: OllamaClient,
        slots: usize,
        name: String,
        generation_timeout: Duration,
    ) -> Self {
        Self {
            queue,
            ollama,
            slots,
            name,
            limits: job::Limits { generation_timeout },
        }
    }

    /// Runs until `shutdown` fires or the queue closes. Jobs already running are finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut slots = JoinSet::new();
        if self.queue.wants_announcements() {
            let worker = self.clone();
            let shutdown = shutdown.clone();
            slots.spawn(async move { announce::run(worker, shutdown).await });
        }
        for slot in 0..self.slots {
            let worker = self.clone();
            let shutdown = shutdown.clone();
            slots.spawn(async move { worker.slot_loop(slot, shutdown).await });
        }
        while slots.join_next().await.is_some() {}
    }

    async fn slot_loop(self, slot: usize, shutdown: CancellationToken) {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = self.queue.next() => next,
            };
            let delivery = match next {
                Ok(delivery) => delivery,
                Err(QueueError::Closed) => return,
                Err(e) => {
                    tracing::warn!(slot, error = %e, "cannot take a job; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            // Ollama is called only after the grant: a job whose client left, or a copy that
            // lost to another, never reaches it (on a real Ollama that could mean a model load
            // or a long prompt evaluation for nobody). The claim costs well under a
            // millisecond next to Ollama's own time to first token.
            let job_id = delivery.job().id.clone();
            let mut assignment = match delivery.claim(&self.name, self.slots).await {
                Claim::Granted(assignment) => assignment,
                Claim::Denied => {
                    tracing::debug!(job = %job_id, "claim denied; job dropped");
                    continue;
                }
                Claim::Failed(e) => {
                    tracing::warn!(job = %job_id, error = %e, "claim failed; the job went back to the queue");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            let mut stamps = WorkerStamps::claimed_now();
            // Boxed: the run's future (an HTTP request in flight, a stream being parsed) is
            // a few kilobytes, and inline it would make every idle slot's task that large.
            Box::pin(job::run(
                &self.ollama,
                assignment.as_mut(),
                self.limits,
                &mut stamps,
            ))
            .await;
            stamps.log(&job_id);
            assignment.finish().await;
        }
    }
}
