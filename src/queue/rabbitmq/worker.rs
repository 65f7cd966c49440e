//! Worker side of the RabbitMQ backend: consumes the job queue with prefetch = slots (more
//! would let the broker hand out work before a slot is free and silently defeat priority),
//! claims each job from its gateway, streams events back and acknowledges the job only when
//! it ended, so a worker that dies mid-job gets it redelivered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::broker::{self, Names, Published};
use super::link::{self, Link};
use super::outbox::EventOutbox;
use super::wire::{Announcement, Control, JobMessage, Reply};
use super::{BrokerStatus, RabbitConfig};
use crate::queue::{
    Assignment, BackendHealth, Claim, Delivery, Job, JobEvent, QueueError, WorkQueue,
    WorkerAnnouncement,
};

/// How long acknowledging a job may take; on a connection that just died it may never finish.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Acknowledges a job. Fails only if its channel died, in which case the broker requeued the
/// job already; bounded, so a slot is never held by a dead connection.
async fn ack(delivery: &AmqpDelivery) {
    let acked = delivery.acker.ack(BasicAckOptions::default());
    if !matches!(tokio::time::timeout(ACK_TIMEOUT, acked).await, Ok(Ok(_))) {
        tracing::debug!("a job could not be acknowledged; its channel is gone");
    }
}

/// How long a worker waits for its claim to be answered before putting the job back.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(3);

/// Puts a job back in its queue for another worker (or this one) to claim again. Fails only
/// if its channel died, in which case the broker requeued the job already.
async fn requeue(delivery: &AmqpDelivery) {
    let options = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    let nacked = delivery.acker.nack(options);
    if !matches!(tokio::time::timeout(ACK_TIMEOUT, nacked).await, Ok(Ok(_))) {
        tracing::debug!("a job could not be requeued; its channel is gone");
    }
}

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
                    return Ok(Box::new(RabbitDelivery {
                        message,
                        delivery,
                        inner: Arc::clone(&self.inner),
                    }));
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

#[derive(Debug)]
struct RabbitDelivery {
    message: JobMessage,
    delivery: AmqpDelivery,
    inner: Arc<Inner>,
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
        let claim = Reply::Claim {
            job_id: job_id.clone(),
            copy: self.message.copy,
            redelivered: self.delivery.redelivered,
            worker: worker.to_owned(),
            // The gateway reports the start from these when it grants the claim.
            slots,
            control: self.inner.control_queue.clone(),
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
            Ok(Published::Returned) => Ok(false),
            Err(e) => Err(e),
        };
        locked(&self.inner.claims).remove(&key);
        match answer {
            Ok(true) => {}
            Ok(false) => {
                ack(&self.delivery).await;
                return Claim::Denied;
            }
            Err(e) => {
                // A broker reason, not the job's: it goes back to the queue. A grant that
                // arrives late finds no claim here and is dropped; the gateway grants the
                // redelivered copy again, as no token was sent.
                requeue(&self.delivery).await;
                return Claim::Failed(e);
            }
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

async fn supervise(inner: Arc<Inner>) {
    let mut attempt = 0;
    loop {
        let result = session(&inner, &mut attempt).await;
        inner.channel.send_replace(None);
        // Deliveries of a dead session cannot be acknowledged; the broker requeues them, so
        // the jobs running on them must stop.
        for (_, (token, _)) in locked(&inner.running).drain() {
            token.cancel();
        }
        locked(&inner.claims).clear();
        match result {
            Ok(()) => return,
            Err(e) => {
                link::disconnected(&inner.status, &e);
                if inner.shutdown.is_cancelled() {
                    return;
                }
                tracing::warn!(error = %e, "broker session ended; reconnecting");
                broker::backoff(attempt).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

async fn session(inner: &Arc<Inner>, attempt: &mut u32) -> Result<(), String> {
    let e = |e: lapin::Error| e.to_string();
    let (link, mut events) = Link::open(
        &inner.config,
        &inner.names,
        ("worker", *attempt),
        &inner.control_queue,
    )
    .await
    .map_err(e)?;
    let (channel, consume) = (link.channel.clone(), &link.consume);
    // Prefetch = slots: more would let the broker hand out jobs before a slot is free.
    let mut jobs = broker::consume_queue(consume, &inner.names.jobs(), Some(inner.slots))
        .await
        .map_err(e)?;
    let mut orders = broker::consume_queue(consume, &inner.control_queue, None)
        .await
        .map_err(e)?;
    inner.channel.send_replace(Some(channel));
    link::connected(&inner.status);
    *attempt = 0;
    tracing::info!(queue = %inner.control_queue, slots = inner.slots, "worker connected to the broker");
    let mut liveness = tokio::time::interval(broker::LIVENESS_EVERY);
    let mut probe = None;
    loop {
        tokio::select! {
            _ = liveness.tick() => {
                let replies = inner.running_reply_queues();
                if !replies.is_empty() {
                    let dead = broker::queues_without_consumers(consume, &mut probe, replies).await.map_err(e)?;
                    inner.gateways_gone(&dead);
                }
            }
            delivery = jobs.next() => {
                let delivery = delivery.ok_or("the broker cancelled the job consumer")?.map_err(e)?;
                if inner.incoming_tx.send(delivery).await.is_err() {
                    return Ok(());
                }
            }
            order = orders.next() => {
                let order = order.ok_or("the broker cancelled the control consumer")?.map_err(e)?;
                apply(inner, &order.data);
            }
            event = events.event(&inner.status) => event?,
            () = inner.shutdown.cancelled() => {
                link.close().await;
                return Ok(());
            }
        }
    }
}

/// Applies a gateway's order.
fn apply(inner: &Inner, data: &[u8]) {
    match serde_json::from_slice::<Control>(data) {
        Ok(Control::Grant { job_id, copy }) => {
            if let Some(waiting) = locked(&inner.claims).remove(&(job_id, copy)) {
                let _ = waiting.send(true);
            }
        }
        Ok(Control::Deny { job_id, copy }) => {
            if let Some(waiting) = locked(&inner.claims).remove(&(job_id, copy)) {
                let _ = waiting.send(false);
            }
        }
        Ok(Control::Cancel { job_id }) => {
            if let Some((token, _)) = locked(&inner.running).get(&job_id) {
                token.cancel();
            }
        }
        Err(err) => tracing::warn!(error = %err, "unreadable order on the control queue"),
    }
}
