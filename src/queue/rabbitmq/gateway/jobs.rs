//! This gateway's jobs: publishing copies, forwarding events under the
//! slow-client policy, expiry, and what happens when a worker vanishes.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Inner, Outgoing, Phase, Tracked, expired, unavailable};
use crate::queue::rabbitmq::wire::{Bell, JobMessage};
use crate::queue::rabbitmq::{broker, locked};
use crate::queue::{Job, JobEvent, JobFailure, QueueError, QueueSnapshot, TierDepth, pacing};

/// Pauses before each new try of a job publish that was refused or came back unroutable:
/// about 3 s in all.
const RETRY_AFTER_MS: [u64; 6] = [50, 100, 200, 400, 800, 1600];

impl Inner {
    /// This gateway's own queue depth per tier and running jobs.
    pub(super) fn local_snapshot(&self) -> QueueSnapshot {
        let jobs = self.lock();
        let mut tiers: BTreeMap<&str, TierDepth> = BTreeMap::new();
        let mut running = 0;
        for t in jobs.values() {
            if !matches!(t.phase, Phase::Queued) {
                running += 1;
                continue;
            }
            let entry = tiers.entry(&t.job.tier).or_insert_with(|| TierDepth {
                tier: t.job.tier.clone(),
                queued: 0,
                oldest_wait_secs: 0.0,
                starving: 0,
            });
            let waited = t.enqueued.elapsed();
            entry.queued += 1;
            entry.oldest_wait_secs = entry.oldest_wait_secs.max(waited.as_secs_f64());
            entry.starving += usize::from(waited >= self.policy.starvation(&t.job.tier));
        }
        QueueSnapshot {
            tiers: tiers.into_values().collect(),
            running,
        }
    }

    /// Fails this gateway's queued jobs of `tier` (all when `None`); returns how many.
    pub(super) fn clear_local(&self, tier: Option<&str>) -> usize {
        let doomed: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, t)| {
                matches!(t.phase, Phase::Queued) && tier.is_none_or(|x| t.job.tier == x)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &doomed {
            self.fail(
                id,
                JobFailure::new(503, "the queue was cleared by an administrator"),
            );
        }
        doomed.len()
    }

    /// Publishes copy `copy` of a job at `level`, expiring when the job may wait no longer.
    pub(super) async fn publish_copy(
        &self,
        job: &Job,
        copy: u8,
        level: u8,
        remaining: Duration,
    ) -> Result<(), QueueError> {
        let mut channel = self.channel.borrow().clone().ok_or_else(unavailable)?;
        let reply_to = locked(&self.reply_queue).clone();
        let message = JobMessage {
            v: 1,
            job: job.clone(),
            copy,
            level,
            reply_to: reply_to.clone(),
        };
        let payload =
            serde_json::to_vec(&message).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let ttl = remaining;
        // Persistent, so a broker restart keeps queued jobs (a quorum queue stores every
        // message anyway); mandatory, so a job queue that is not there is a refusal instead
        // of a silent drop. A queue without a quorum of its nodes answers neither, and the
        // confirm's time limit turns that into a refusal too.
        let properties = broker::json_properties(&job.id)
            .with_message_id(job.id.as_str().into())
            .with_reply_to(reply_to.as_str().into())
            .with_delivery_mode(2)
            .with_expiration(ttl.as_millis().max(1).to_string().into());
        let queue = self.names.jobs(&job.model, level);
        // A job queue unused past its expiry is gone although this session declared it: the
        // publish comes back unroutable, and one more declare brings the queue back. A quorum
        // queue also refuses (nacks) messages for a while when it is busy or its cluster has
        // just changed (seen for about a second after nodes came back); a nacked message was
        // not taken, so sending it again duplicates nothing, and waiting a little longer keeps
        // a client, or a job accepted long ago, from failing on a passing refusal.
        let mut refusal = "the job queue is not available on the broker".to_owned();
        for attempt in 0..=RETRY_AFTER_MS.len() {
            if let Some(pause) = attempt.checked_sub(1).and_then(|i| RETRY_AFTER_MS.get(i)) {
                tokio::time::sleep(Duration::from_millis(*pause)).await;
            }
            self.declare_jobs(&channel, &queue).await?;
            match broker::publish(&channel, &queue, &payload, properties.clone(), true).await {
                Ok(broker::Published::Routed) => {
                    // Only now: a worker woken earlier could find the queue still empty.
                    let bell = Bell {
                        model: job.model.clone(),
                        level,
                    };
                    if let Ok(bell) = serde_json::to_vec(&bell) {
                        broker::ring(&channel, &self.names.bell(), &bell).await;
                    }
                    return Ok(());
                }
                Ok(broker::Published::Returned) => {
                    locked(&self.declared).remove(&queue);
                }
                Err(e @ broker::PublishError::Nacked) => {
                    refusal = e.to_string();
                    if attempt == 1 {
                        channel = self.fresh_jobs_channel(&channel).await.unwrap_or(channel);
                    }
                }
                Err(e) => return Err(QueueError::Unavailable(e.to_string())),
            }
        }
        Err(QueueError::Unavailable(refusal))
    }

    /// Replaces the jobs channel `refused` with a new one, unless another publish already
    /// did; returns the channel to use. A channel whose publishes to a quorum queue keep being
    /// refused after the queue's leader moved (seen on RabbitMQ 3.10 after the leader's node
    /// died) holds stale state about the queue; a new channel starts clean. The old one is
    /// closed once its pending confirms have had their time.
    async fn fresh_jobs_channel(&self, refused: &lapin::Channel) -> Option<lapin::Channel> {
        let publisher = locked(&self.publisher).clone()?;
        let fresh = broker::confirm_channel(&publisher).await.ok()?;
        let mut replaced = false;
        self.channel.send_if_modified(|current| {
            replaced = current.as_ref().is_some_and(|c| c.id() == refused.id());
            if replaced {
                *current = Some(fresh.clone());
            }
            replaced
        });
        let (old, current) = if replaced {
            tracing::warn!("job publishes keep being refused; publishing on a new channel");
            locked(&self.declared).clear();
            (refused.clone(), fresh)
        } else {
            (fresh, self.channel.borrow().clone()?)
        };
        tokio::spawn(async move {
            tokio::time::sleep(broker::CONFIRM_TIMEOUT).await;
            let _ = old.close(200, "replaced".into()).await;
        });
        Some(current)
    }

    /// Declares a job queue unless this session did already.
    async fn declare_jobs(&self, channel: &lapin::Channel, queue: &str) -> Result<(), QueueError> {
        if locked(&self.declared).contains(queue) {
            return Ok(());
        }
        broker::declare_jobs(channel, queue)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        locked(&self.declared).insert(queue.to_owned());
        Ok(())
    }

    /// This gateway's queued jobs.
    pub(super) fn queued_ids(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, t)| matches!(t.phase, Phase::Queued))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Removes a job and tells its client why.
    pub(super) fn fail(&self, job_id: &str, failure: JobFailure) {
        if let Some(tracked) = self.lock().remove(job_id) {
            let _ = tracked.events.try_send(JobEvent::Failed(failure));
        }
    }

    /// The broker session ended. Events of running jobs may have been lost with it (the reply
    /// queue is read without acknowledgements), so those jobs end with an error instead of a
    /// silently incomplete answer, and their workers are told to stop once a session is back.
    /// Queued jobs stay queued.
    pub(super) fn session_lost(&self) {
        let running: Vec<(String, String)> = self
            .lock()
            .iter()
            .filter_map(|(id, t)| match &t.phase {
                Phase::Granted { control, .. } => Some((id.clone(), control.clone())),
                Phase::Queued => None,
            })
            .collect();
        for (job_id, control) in running {
            tracing::warn!(job = %job_id, "broker connection lost while the job ran; ending it");
            self.fail(
                &job_id,
                JobFailure::new(
                    503,
                    "the connection to the message broker was lost while this request ran; retry it",
                ),
            );
            let _ = self.outbox.send(Outgoing::Cancel { control, job_id });
        }
    }

    /// Hands a worker's events to the job's ticket. The reply consumer must never wait, so a
    /// client whose buffer is full gets a task that waits for it under the slow-client policy,
    /// and later events queue behind it; a client that falls a second buffer behind, or
    /// stalls past the policy's patience, is dropped and its worker told to stop.
    pub(super) fn forward(self: &Arc<Self>, job_id: &str, events: Vec<JobEvent>) {
        let mut jobs = self.lock();
        let Some(tracked) = jobs.get_mut(job_id) else {
            return;
        };
        for event in events {
            let last = matches!(event, JobEvent::Finished { .. } | JobEvent::Failed(_));
            tracked.tokens_sent |= matches!(event, JobEvent::Delta(_));
            let kept = match &tracked.overflow {
                Some(overflow) => overflow.try_send(event).is_ok(),
                None => match tracked.events.try_send(event) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                    Err(mpsc::error::TrySendError::Full(event)) => {
                        tracked.overflow = Some(self.wait_for_client(job_id, &tracked.events));
                        tracked
                            .overflow
                            .as_ref()
                            .is_some_and(|o| o.try_send(event).is_ok())
                    }
                },
            };
            if !kept || last {
                // Done, or the client is gone or too slow: either way the job ends here.
                if let Some(Tracked {
                    phase: Phase::Granted { control, .. },
                    ..
                }) = jobs.remove(job_id)
                    && !last
                {
                    let _ = self.outbox.send(Outgoing::Cancel {
                        control,
                        job_id: job_id.to_owned(),
                    });
                }
                return;
            }
        }
    }

    /// Starts the task that delivers a stalled client's events in order, at the client's pace
    /// or not at all; returns where later events go.
    fn wait_for_client(
        self: &Arc<Self>,
        job_id: &str,
        events: &mpsc::Sender<JobEvent>,
    ) -> mpsc::Sender<JobEvent> {
        let (overflow, mut backlog) = pacing::channel();
        let (inner, events, job_id) = (Arc::downgrade(self), events.clone(), job_id.to_owned());
        let patience = self.policy.slow_client;
        tokio::spawn(async move {
            while let Some(event) = backlog.recv().await {
                if pacing::deliver(&events, event, patience).await.is_err() {
                    if let Some(inner) = inner.upgrade() {
                        inner.forget(&job_id);
                    }
                    return;
                }
            }
        });
        overflow
    }

    /// The client let go of its ticket: forget the job and stop its worker.
    pub(super) fn forget(&self, job_id: &str) {
        let removed = self.lock().remove(job_id);
        if let Some(Tracked {
            phase: Phase::Granted { control, .. },
            ..
        }) = removed
        {
            // The session loop publishes the order.
            let _ = self.outbox.send(Outgoing::Cancel {
                control,
                job_id: job_id.to_owned(),
            });
        }
    }
}

/// Fails a job still queued at its deadline. Ends as soon as the job is granted or gone
/// (`stop`).
pub(super) async fn expire(
    inner: Weak<Inner>,
    job_id: String,
    deadline: Instant,
    stop: CancellationToken,
) {
    let shutdown = match inner.upgrade() {
        Some(strong) => strong.shutdown.clone(),
        None => return,
    };
    tokio::select! {
        () = tokio::time::sleep_until(deadline.into()) => {}
        () = shutdown.cancelled() => return,
        () = stop.cancelled() => return,
    }
    let Some(strong) = inner.upgrade() else {
        return;
    };
    let still_queued = matches!(
        strong.lock().get(&job_id).map(|t| &t.phase),
        Some(Phase::Queued)
    );
    if still_queued {
        strong.fail(&job_id, expired(&job_id));
    }
}
