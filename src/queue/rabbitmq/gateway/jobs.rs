//! This gateway's jobs: publishing copies, deciding claims, forwarding events, aging, and
//! what happens when a worker vanishes.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{AgingStop, Inner, Outgoing, Phase, Tracked, expired, unavailable};
use crate::queue::priority::{TOP_LEVEL, effective_level};
use crate::queue::rabbitmq::broker;
use crate::queue::rabbitmq::wire::JobMessage;
use crate::queue::{Job, JobEvent, JobFailure, QueueError, QueueSnapshot, TierDepth};

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
            });
            entry.queued += 1;
            entry.oldest_wait_secs = entry
                .oldest_wait_secs
                .max(t.enqueued.elapsed().as_secs_f64());
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

    /// Publishes copy `copy` of a job at `level`, expiring when the next copy supersedes it.
    pub(super) async fn publish_copy(
        &self,
        job: &Job,
        copy: u8,
        level: u8,
        remaining: Duration,
    ) -> Result<(), QueueError> {
        let channel = self.channel.borrow().clone().ok_or_else(unavailable)?;
        let message = JobMessage {
            v: 1,
            job: job.clone(),
            copy,
            reply_to: self.reply_queue.clone(),
        };
        let payload =
            serde_json::to_vec(&message).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        // Stale copies expire (at the queue head) instead of piling up; the top-level copy
        // lives as long as the job may wait.
        let ttl = if level < TOP_LEVEL {
            (self.aging * 2).min(remaining)
        } else {
            remaining
        };
        let properties = broker::json_properties(&job.id)
            .with_message_id(job.id.as_str().into())
            .with_reply_to(self.reply_queue.as_str().into())
            .with_priority(level)
            .with_expiration(ttl.as_millis().max(1).to_string().into());
        broker::publish(&channel, &self.names.jobs(), &payload, properties, false)
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Unavailable(e.to_string()))
    }

    /// Removes a job and tells its client why.
    pub(super) fn fail(&self, job_id: &str, failure: JobFailure) {
        if let Some(tracked) = self.lock().remove(job_id) {
            let _ = tracked.events.try_send(JobEvent::Failed(failure));
        }
    }

    /// Decides a claim: the first claim of a queued job wins; a redelivery of the granted copy
    /// (its worker died) is granted again only if the client has seen nothing yet.
    pub(super) fn decide(&self, job_id: &str, copy: u8, redelivered: bool, control: &str) -> bool {
        let mut jobs = self.lock();
        let Some(tracked) = jobs.get_mut(job_id) else {
            return false;
        };
        match tracked.phase.clone() {
            Phase::Queued if tracked.enqueued.elapsed() > tracked.job.max_wait => {
                drop(jobs);
                self.fail(job_id, expired(job_id));
                false
            }
            Phase::Queued => {
                tracked.aging.0.cancel();
                tracked.phase = Phase::Granted {
                    control: control.to_owned(),
                    copy,
                };
                true
            }
            Phase::Granted { copy: granted, .. } if granted == copy && redelivered => {
                if tracked.tokens_sent {
                    drop(jobs);
                    self.fail(
                        job_id,
                        JobFailure::new(502, "the worker running this request stopped mid-answer"),
                    );
                    false
                } else {
                    tracked.phase = Phase::Granted {
                        control: control.to_owned(),
                        copy,
                    };
                    true
                }
            }
            Phase::Granted { .. } => false,
        }
    }

    /// Control queues of the workers running this gateway's jobs.
    pub(super) fn granted_controls(&self) -> Vec<String> {
        let mut controls: Vec<String> = self
            .lock()
            .values()
            .filter_map(|t| match &t.phase {
                Phase::Granted { control, .. } => Some(control.clone()),
                Phase::Queued => None,
            })
            .collect();
        controls.sort_unstable();
        controls.dedup();
        controls
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

    /// A worker vanished: its jobs that sent nothing yet go back to the queue, the others end
    /// with an error (a half answer is never restarted).
    pub(super) async fn worker_gone(self: &Arc<Self>, control: &str) {
        let mut requeue = Vec::new();
        let mut failed = Vec::new();
        {
            let mut jobs = self.lock();
            for (id, t) in jobs.iter_mut() {
                if !matches!(&t.phase, Phase::Granted { control: c, .. } if c == control) {
                    continue;
                }
                if t.tokens_sent {
                    failed.push(id.clone());
                } else {
                    t.phase = Phase::Queued;
                    t.aging = AgingStop(CancellationToken::new());
                    requeue.push((Arc::clone(&t.job), t.copies, t.enqueued, t.aging.0.clone()));
                    t.copies = t.copies.saturating_add(1);
                }
            }
        }
        for id in failed {
            tracing::warn!(job = %id, "worker vanished mid-answer");
            self.fail(
                &id,
                JobFailure::new(502, "the worker running this request stopped mid-answer"),
            );
        }
        for (job, copies, enqueued, stop_aging) in requeue {
            tracing::warn!(job = %job.id, "worker vanished before answering; job queued again");
            let level = effective_level(job.base_level, enqueued.elapsed(), self.aging);
            let remaining = job.max_wait.saturating_sub(enqueued.elapsed());
            if let Err(e) = self.publish_copy(&job, copies, level, remaining).await {
                tracing::warn!(job = %job.id, error = %e, "could not queue the job again");
            }
            tokio::spawn(age(
                Arc::downgrade(self),
                job.id.clone(),
                self.aging,
                stop_aging,
            ));
        }
    }

    /// Hands a worker's events to the job's ticket.
    pub(super) fn forward(&self, job_id: &str, events: Vec<JobEvent>) {
        let mut jobs = self.lock();
        let Some(tracked) = jobs.get_mut(job_id) else {
            return;
        };
        for event in events {
            let last = matches!(event, JobEvent::Finished { .. } | JobEvent::Failed(_));
            tracked.tokens_sent |= matches!(event, JobEvent::Delta(_));
            if tracked.events.try_send(event).is_err() || last {
                // Done, or the client stopped reading: either way the job ends here.
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

/// Ages one job: at each interval it publishes a copy one level up; at the deadline a still
/// queued job fails. Ends as soon as the job is claimed or gone (`stop`).
pub(super) async fn age(
    inner: Weak<Inner>,
    job_id: String,
    aging: Duration,
    stop: CancellationToken,
) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let (job, next_at, deadline, copies) = {
            let jobs = strong.lock();
            let Some(t) = jobs.get(&job_id) else { return };
            if !matches!(t.phase, Phase::Queued) {
                return;
            }
            let level = effective_level(t.job.base_level, t.enqueued.elapsed(), aging);
            let next_at = (level < TOP_LEVEL).then(|| t.enqueued + aging * u32::from(t.copies));
            (
                Arc::clone(&t.job),
                next_at,
                t.enqueued + t.job.max_wait,
                t.copies,
            )
        };
        let shutdown = strong.shutdown.clone();
        drop(strong);
        let sleep_until = next_at.unwrap_or(deadline).min(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(sleep_until.into()) => {}
            () = shutdown.cancelled() => return,
            () = stop.cancelled() => return,
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if Instant::now() >= deadline {
            let still_queued = matches!(
                strong.lock().get(&job_id).map(|t| &t.phase),
                Some(Phase::Queued)
            );
            if still_queued {
                strong.fail(&job_id, expired(&job_id));
            }
            return;
        }
        let level = job.base_level.saturating_add(copies).min(TOP_LEVEL);
        {
            let mut jobs = strong.lock();
            match jobs.get_mut(&job_id) {
                Some(t) if matches!(t.phase, Phase::Queued) => t.copies = copies + 1,
                _ => return,
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = strong.publish_copy(&job, copies, level, remaining).await {
            tracing::warn!(job = %job_id, error = %e, "could not publish an aged copy; will retry");
        }
    }
}
