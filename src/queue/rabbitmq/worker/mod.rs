//! Worker side of the RabbitMQ backend: each free slot pulls one job from the highest
//! non-empty level of its models' queues (a consumer's prefetch would hand out work before a
//! slot is free and defeat priority), claims it from its gateway, streams events back and
//! acknowledges the job only when it ended, so a worker that dies mid-job gets it redelivered.
//!
//! - [`backlog`]: which queue holds work, from bells, pulls and periodic counts;
//! - [`delivery`]: a pulled job's claim and, once granted, its assignment;
//! - [`session`]: the broker session and reconnection;
//! - [`acks`]: bounded acknowledgement and requeueing.

mod acks;
mod backlog;
mod delivery;
mod session;

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use async_trait::async_trait;
use lapin::Channel;
use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::broker::{self, Names, Published};
use super::wire::{Announcement, JobMessage, Reply};
use super::{BrokerStatus, RabbitConfig, locked};
use crate::queue::{BackendHealth, Delivery, QueueError, WorkQueue, WorkerAnnouncement};
use acks::ack;
use backlog::Backlog;
use delivery::RabbitDelivery;
use session::supervise;

/// How long an idle slot waits for a bell before it looks at its beliefs again; the
/// session's periodic count refreshes them at the same pace.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The channel slots pull jobs on, and the broker session it belongs to.
#[derive(Debug, Clone)]
struct PullChannel {
    session: u32,
    channel: Channel,
}

/// A gateway's answer to a claim: the grant's lease number, or `None` for a denial.
type Answer = Option<u32>;

/// The worker's handle on the broker.
#[derive(Debug, Clone)]
pub struct RabbitWorker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RabbitConfig,
    names: Names,
    /// Broker sessions so far: each names its own queues (see [`Names::owned`]).
    sessions: AtomicU32,
    /// This session's control queue.
    control_queue: Mutex<String>,
    slots: u16,
    /// Claims awaiting an answer, by job and copy: one worker may hold both copies of a
    /// rescued job, and each claim gets its own answer.
    claims: Mutex<HashMap<(String, u8), oneshot::Sender<Answer>>>,
    /// Running jobs: their cancel token and their gateway's reply queue.
    running: Mutex<HashMap<String, (CancellationToken, String)>>,
    /// The session's confirm channel, for publishing.
    channel: watch::Sender<Option<Channel>>,
    /// The session's channel for pulling jobs (their acks go on it too).
    pull: watch::Sender<Option<PullChannel>>,
    /// The session whose pull channel failed last: that session ends (a failure on an
    /// earlier session's closing channel must not end the next one).
    pull_failed: watch::Sender<u32>,
    backlog: Mutex<Backlog>,
    /// Rings when the backlog may have gained work.
    bell: Notify,
    /// The models its Ollama has, from the worker's announcements: the job queues it pulls.
    models: watch::Sender<Vec<String>>,
    status: Mutex<BrokerStatus>,
    shutdown: CancellationToken,
}

impl RabbitWorker {
    /// Starts the connection supervisor for a worker running `slots` jobs at once.
    pub fn start(config: RabbitConfig, slots: u16) -> Self {
        let inner = Arc::new(Inner {
            names: Names::new(&config.prefix),
            sessions: AtomicU32::new(0),
            control_queue: Mutex::default(),
            slots,
            claims: Mutex::default(),
            running: Mutex::default(),
            channel: watch::Sender::new(None),
            pull: watch::Sender::new(None),
            pull_failed: watch::Sender::new(u32::MAX),
            backlog: Mutex::default(),
            bell: Notify::new(),
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
    /// Sends a reply to a gateway. A claim waits for its confirm a bounded time (a claim that
    /// fails puts the job back); a running job's reports wait as long as the session lives
    /// (see [`broker::publish_patiently`]): giving up on them under a resource alarm lost the
    /// end of the answer and left its client waiting forever.
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
        let properties = broker::json_properties(job_id);
        let published = match reply {
            Reply::Claim { .. } => {
                broker::publish(&channel, reply_to, &payload, properties, true).await
            }
            Reply::Running { .. } | Reply::Events { .. } | Reply::Ping => {
                broker::publish_patiently(&channel, reply_to, &payload, properties).await
            }
        };
        published.map_err(|e| QueueError::Unavailable(e.to_string()))
    }
}

impl RabbitWorker {
    /// Pulls from the queues believed to hold work, highest level first, until one yields a
    /// job or none is left to try.
    async fn pull_best(&self, pull: &PullChannel) -> Option<Box<dyn Delivery>> {
        let (session, channel) = (pull.session, &pull.channel);
        let inner = &self.inner;
        loop {
            let (model, level) = locked(&inner.backlog).next()?;
            let pulled = broker::pull(channel, &inner.names.jobs(&model, level)).await;
            match pulled {
                Ok(Some((delivery, remaining))) => {
                    let more = {
                        let mut backlog = locked(&inner.backlog);
                        backlog.observed(&model, level, remaining);
                        backlog.any()
                    };
                    // Slots wake one at a time (waking every idle slot per bell cost a worker
                    // with a thousand slots a millisecond of CPU per job): a slot that got a
                    // job wakes the next while more work is believed to wait. Only after a
                    // pull that worked: a slot whose pulls fail must not keep waking itself.
                    if more {
                        inner.bell.notify_one();
                    }
                    match serde_json::from_slice::<JobMessage>(&delivery.data) {
                        Ok(message) => {
                            let inner = Arc::clone(inner);
                            return Some(Box::new(RabbitDelivery::new(message, delivery, inner)));
                        }
                        Err(e) => {
                            // Poison: nothing can run it; acknowledging drops it for good.
                            tracing::warn!(error = %e, "unreadable job message; dropped");
                            ack(&delivery).await;
                        }
                    }
                }
                Ok(None) => locked(&inner.backlog).observed(&model, level, 0),
                Err(e) => {
                    // The broker closed the channel (a queue gone, a node lost): that session
                    // ends (its jobs' deliveries went back to the queue) and the next pull
                    // tries every queue again.
                    tracing::warn!(error = %e, "pulling a job failed");
                    locked(&inner.backlog).unknown();
                    inner.pull_failed.send_replace(session);
                    return None;
                }
            }
        }
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
        let inner = &self.inner;
        let mut pulls = inner.pull.subscribe();
        loop {
            // A bell that rings while this slot looks is not missed: with no slot waiting,
            // `notify_one` leaves a permit that the next wait takes at once.
            let channel = pulls.borrow_and_update().clone();
            if let Some(channel) = channel
                && let Some(delivery) = self.pull_best(&channel).await
            {
                return Ok(delivery);
            }
            tokio::select! {
                () = inner.bell.notified() => {}
                _ = pulls.changed() => {}
                () = tokio::time::sleep(RECHECK_EVERY) => {}
                () = inner.shutdown.cancelled() => return Err(QueueError::Closed),
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
            loaded: announcement.loaded.clone(),
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
