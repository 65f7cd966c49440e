//! A job taken from the queue: its claim (granted, denied, or failed and requeued) and, once
//! granted, the assignment that streams its events back and acknowledges it at the end.

use std::sync::Arc;

use async_trait::async_trait;
use lapin::message::Delivery as AmqpDelivery;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::acks::{CLAIM_TIMEOUT, ack, requeue};
use super::{Inner, locked};
use crate::queue::rabbitmq::broker::Published;
use crate::queue::rabbitmq::outbox::EventOutbox;
use crate::queue::rabbitmq::wire::{JobMessage, Reply};
use crate::queue::{Assignment, Claim, Delivery, Job, JobEvent, QueueError};

/// A delivered job message, not yet claimed.
#[derive(Debug)]
pub(super) struct RabbitDelivery {
    message: JobMessage,
    delivery: AmqpDelivery,
    inner: Arc<Inner>,
}

impl RabbitDelivery {
    pub(super) fn new(message: JobMessage, delivery: AmqpDelivery, inner: Arc<Inner>) -> Self {
        Self {
            message,
            delivery,
            inner,
        }
    }
}

#[async_trait]
impl Delivery for RabbitDelivery {
    fn job(&self) -> &Job {
        &self.message.job
    }

    async fn claim(self: Box<Self>, worker: &str, slots: usize) -> Claim {
        let job_id = self.message.job.id.clone();
        let (tx, rx) = oneshot::channel();
        let key = (job_id.clone(), self.message.copy);
        locked(&self.inner.claims).insert(key.clone(), tx);
        let control = locked(&self.inner.control_queue).clone();
        let claim = Reply::Claim {
            job_id: job_id.clone(),
            copy: self.message.copy,
            redelivered: self.delivery.redelivered,
            worker: worker.to_owned(),
            // The gateway reports the start from these when it grants the claim.
            slots,
            control: control.clone(),
        };
        let published = self
            .inner
            .publish_reply(&self.message.reply_to, &job_id, &claim)
            .await;
        let answer = match published {
            Ok(Published::Routed) => match tokio::time::timeout(CLAIM_TIMEOUT, rx).await {
                Ok(Ok(granted)) => Ok(granted),
                Ok(Err(_)) => Err(QueueError::Unavailable(
                    "the broker session ended while the claim was pending".to_owned(),
                )),
                Err(_) => Err(QueueError::Unavailable(format!(
                    "the claim got no answer within {} s",
                    CLAIM_TIMEOUT.as_secs()
                ))),
            },
            // No reply queue: the gateway that owned the client is gone, and the job with it.
            Ok(Published::Returned) => Ok(None),
            Err(e) => Err(e),
        };
        locked(&self.inner.claims).remove(&key);
        let lease = match answer {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                ack(&self.delivery).await;
                return Claim::Denied;
            }
            Err(e) => {
                // A broker reason, not the job's: it goes back to the queue. A grant that
                // arrives late finds no claim here and is dropped; the gateway grants the
                // redelivered copy again, as no token was sent.
                requeue(&self.delivery).await;
                let message = &self.message;
                locked(&self.inner.backlog).rang(&message.job.model, message.level);
                self.inner.bell.notify_one();
                return Claim::Failed(e);
            }
        };
        // Ends the grant's lease: without it the gateway gives the job to another worker. Not
        // awaited: the job's events, which also end the lease, need not wait behind it.
        {
            let (inner, reply_to) = (Arc::clone(&self.inner), self.message.reply_to.clone());
            let running = Reply::Running {
                job_id: job_id.clone(),
                lease,
                control,
            };
            let id = job_id.clone();
            tokio::spawn(async move {
                if let Err(e) = inner.publish_reply(&reply_to, &id, &running).await {
                    tracing::debug!(job = %id, error = %e, "could not report the start");
                }
            });
        }
        let cancelled = CancellationToken::new();
        locked(&self.inner.running)
            .insert(job_id, (cancelled.clone(), self.message.reply_to.clone()));
        let outbox = {
            let (inner, reply_to) = (Arc::clone(&self.inner), self.message.reply_to.clone());
            let job_id = self.message.job.id.clone();
            EventOutbox::start(
                move |events| {
                    let (inner, reply_to, job_id) =
                        (Arc::clone(&inner), reply_to.clone(), job_id.clone());
                    async move {
                        let reply = Reply::Events {
                            job_id: job_id.clone(),
                            lease,
                            events,
                        };
                        matches!(
                            inner.publish_reply(&reply_to, &job_id, &reply).await,
                            Ok(Published::Routed)
                        )
                    }
                },
                cancelled.clone(),
            )
        };
        Claim::Granted(Box::new(RabbitAssignment {
            message: self.message,
            delivery: self.delivery,
            inner: self.inner,
            cancelled,
            outbox,
        }))
    }
}

#[derive(Debug)]
struct RabbitAssignment {
    message: JobMessage,
    delivery: AmqpDelivery,
    inner: Arc<Inner>,
    cancelled: CancellationToken,
    outbox: EventOutbox,
}

#[async_trait]
impl Assignment for RabbitAssignment {
    fn job(&self) -> &Job {
        &self.message.job
    }

    async fn send(&mut self, event: JobEvent) -> Result<(), QueueError> {
        self.outbox.push(event)
    }

    fn cancelled(&self) -> CancellationToken {
        self.cancelled.clone()
    }

    async fn finish(mut self: Box<Self>) {
        // The last events must reach the gateway before the job is acknowledged, unless the
        // job was stopped (client gone, gateway gone, session lost): then nobody reads them.
        if !self.cancelled.is_cancelled() {
            self.outbox.flush().await;
        }
        locked(&self.inner.running).remove(&self.message.job.id);
        ack(&self.delivery).await;
    }
}
