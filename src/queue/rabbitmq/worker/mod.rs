//! Worker side of the RabbitMQ backend: consumes the job queue with prefetch = slots (more
//! would let the broker hand out work before a slot is free and silently defeat priority),
//! claims each job from its gateway, streams events back and acknowledges the job only when
//! it ended, so a worker that dies mid-job gets it redelivered.

//!
//! - [`delivery`]: a delivered job's claim and, once granted, its assignment;
//! - [`session`]: the broker session and reconnection;
//! - [`acks`]: bounded acknowledgement and requeueing.

mod acks;
mod delivery;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use lapin::Channel;
use lapin::message::Delivery as AmqpDelivery;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::broker::{self, Names, Published};
use super::wire::{Announcement, JobMessage, Reply};
use super::{BrokerStatus, RabbitConfig};
use crate::queue::{BackendHealth, Delivery, QueueError, WorkQueue, WorkerAnnouncement};
use acks::ack;
use delivery::RabbitDelivery;
use session::supervise;

/// The worker's handle on the broker.
#[derive(Debug, Clone)]
pub struct RabbitWorker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RabbitConfig,
    names: Names,
    control_queue: String,
    slots: u16,
    incoming: tokio::sync::Mutex<mpsc::Receiver<AmqpDelivery>>,
    incoming_tx: mpsc::Sender<AmqpDelivery>,
    /// Claims awaiting an answer, by job and copy: one worker may hold both copies of a
    /// rescued job, and each claim gets its own answer.
    claims: Mutex<HashMap<(String, u8), oneshot::Sender<bool>>>,
    /// Running jobs: their cancel token and their gateway's reply queue.
    running: Mutex<HashMap<String, (CancellationToken, String)>>,
    channel: watch::Sender<Option<Channel>>,
    /// The models its Ollama has, from the worker's announcements: the job queues it consumes.
    models: watch::Sender<Vec<String>>,
    status: Mutex<BrokerStatus>,
    shutdown: CancellationToken,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RabbitWorker {
    /// Starts the connection supervisor for a worker running `slots` jobs at once.
    pub fn start(config: RabbitConfig, slots: u16) -> Self {
        let names = Names::new(&config.prefix);
        let control_queue = names.control(&config.instance);
        let (incoming_tx, incoming) = mpsc::channel(usize::from(slots.max(1)));
        let inner = Arc::new(Inner {
            names,
            control_queue,
            slots,
            incoming: tokio::sync::Mutex::new(incoming),
            incoming_tx,
            claims: Mutex::default(),
            running: Mutex::default(),
            channel: watch::Sender::new(None),
            models: watch::Sender::new(Vec::new()),
            status: Mutex::default(),
            shutdown: CancellationToken::new(),
            config,
        });
        tokio::spawn(supervise(Arc::clone(&inner)));
        Self { inner }
    }

    /// Broker connection state.
    pub fn status(&self) -> BrokerStatus {
        locked(&self.inner.status).clone()
    }

    /// Stops consuming; unacknowledged jobs go back to the queue.
    pub fn close(&self) {
        self.inner.shutdown.cancel();
    }
}

impl Inner {
    async fn publish_reply(
        &self,
        reply_to: &str,
        job_id: &str,
        reply: &Reply,
    ) -> Result<Published, QueueError> {
        let channel = self
            .channel
            .borrow()
            .clone()
            .ok_or(QueueError::ClientGone)?;
        let payload =
            serde_json::to_vec(reply).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        broker::publish(
            &channel,
            reply_to,
            &payload,
            broker::json_properties(job_id),
            true,
        )
        .await
        .map_err(|e| QueueError::Unavailable(e.to_string()))
    }
}

impl Inner {
    fn running_reply_queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = locked(&self.running)
            .values()
            .map(|(_, q)| q.clone())
            .collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// The gateways owning these reply queues are gone: nobody reads their answers.
    fn gateways_gone(&self, reply_queues: &[String]) {
        for (job_id, (token, queue)) in locked(&self.running).iter() {
            if reply_queues.contains(queue) {
                tracing::warn!(job = %job_id, "the gateway of this job vanished; stopping it");
                token.cancel();
            }
        }
    }
}

#[async_trait]
impl WorkQueue for RabbitWorker {
    async fn next(&self) -> Result<Box<dyn Delivery>, QueueError> {
        loop {
            let delivery = {
                let mut incoming = self.inner.incoming.lock().await;
                tokio::select! {
                    d = incoming.recv() => d.ok_or(QueueError::Closed)?,
                    () = self.inner.shutdown.cancelled() => return Err(QueueError::Closed),
                }
            };
            match serde_json::from_slice::<JobMessage>(&delivery.data) {
                Ok(message) => {
                    let inner = Arc::clone(&self.inner);
                    return Ok(Box::new(RabbitDelivery::new(message, delivery, inner)));
                }
                Err(e) => {
                    // Poison: nothing can run it; acknowledging drops it for good.
                    tracing::warn!(error = %e, "unreadable job message; dropped");
                    ack(&delivery).await;
                }
            }
        }
    }

    fn wants_announcements(&self) -> bool {
        true
    }

    fn health(&self) -> BackendHealth {
        let status = self.status();
        let ok = status.connected && !status.blocked;
        let detail = match (ok, status.last_error) {
            (true, _) => "rabbitmq: connected".to_owned(),
            (false, Some(error)) => error,
            (false, None) => "rabbitmq: not connected".to_owned(),
        };
        BackendHealth {
            backend: "rabbitmq",
            ok,
            detail,
        }
    }

    async fn announce(&self, announcement: &WorkerAnnouncement) {
        // The job queues to consume follow the models Ollama has, even while disconnected.
        let mut models: Vec<String> = announcement
            .models
            .iter()
            .filter_map(|m| m.get("name").or_else(|| m.get("model"))?.as_str())
            .map(str::to_owned)
            .collect();
        models.sort_unstable();
        models.dedup();
        self.inner.models.send_if_modified(|current| {
            let changed = *current != models;
            if changed {
                *current = models;
            }
            changed
        });
        let Some(channel) = self.inner.channel.borrow().clone() else {
            return;
        };
        let message = Announcement {
            worker: announcement.worker.clone(),
            slots: announcement.slots,
            models: announcement.models.clone(),
            ollama_ok: announcement.ollama_ok,
        };
        let Ok(payload) = serde_json::to_vec(&message) else {
            return;
        };
        let properties =
            broker::json_properties(&self.inner.config.instance).with_expiration("15000".into());
        if let Err(e) =
            broker::publish_to_exchange(&channel, &self.inner.names.workers(), &payload, properties)
                .await
        {
            tracing::debug!(error = %e, "announcement not sent");
        }
    }
}
