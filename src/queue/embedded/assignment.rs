//! A job handed to an in-process worker: the claim (granted unless the client left) opens the
//! ticket's event channel, and events flow through it under the slow-client policy.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::lane::Queued;
use crate::queue::{Assignment, Claim, Claimed, Delivery, Job, JobEvent, QueueError, pacing};

/// A job taken from the queue, not yet claimed.
#[derive(Debug)]
pub(super) struct EmbeddedDelivery {
    queued: Queued,
    inner: Arc<Inner>,
}

impl EmbeddedDelivery {
    pub(super) fn new(queued: Queued, inner: Arc<Inner>) -> Self {
        Self { queued, inner }
    }
}

#[async_trait]
impl Delivery for EmbeddedDelivery {
    fn job(&self) -> &Job {
        &self.queued.job
    }

    async fn claim(self: Box<Self>, worker: &str, slots: usize) -> Claim {
        // The queue already gave this job to one worker only; the client may still have left.
        let Queued { job, claim, .. } = self.queued;
        if claim.is_closed() {
            return Claim::Denied;
        }
        let (events, receiver) = pacing::channel();
        let started = JobEvent::Started {
            worker: worker.to_owned(),
            slots,
        };
        // The channel is new and empty, so the start always fits.
        if events.try_send(started).is_err() {
            return Claim::Denied;
        }
        let cancel = CancellationToken::new();
        let claimed = Claimed {
            events: receiver,
            cancel: cancel.clone(),
        };
        if claim.send(Ok(claimed)).is_err() {
            return Claim::Denied;
        }
        self.inner.running.fetch_add(1, Ordering::Relaxed);
        Claim::Granted(Box::new(EmbeddedAssignment {
            job,
            events,
            cancel,
            inner: self.inner,
        }))
    }
}

#[derive(Debug)]
struct EmbeddedAssignment {
    job: Arc<Job>,
    events: mpsc::Sender<JobEvent>,
    cancel: CancellationToken,
    inner: Arc<Inner>,
}

#[async_trait]
impl Assignment for EmbeddedAssignment {
    fn job(&self) -> &Job {
        &self.job
    }

    async fn send(&mut self, event: JobEvent) -> Result<(), QueueError> {
        let sent = pacing::deliver(&self.events, event, self.inner.policy.slow_client).await;
        if sent.is_err() {
            // A stalled client is dropped like one that left: the worker stops at once.
            self.cancel.cancel();
        }
        sent
    }

    fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }

    async fn finish(self: Box<Self>) {}
}

impl Drop for EmbeddedAssignment {
    fn drop(&mut self) {
        self.inner.running.fetch_sub(1, Ordering::Relaxed);
    }
}
