//! Claims and grants: which worker runs a job, for how long a grant holds before the worker
//! reports the start, and what happens to a job whose worker vanished or whose grant lapsed.
//!
//! Every grant has a number (its lease). The worker reports the start and every event under
//! it, and only the job's latest grant counts: a worker whose grant lapsed, or that ran a copy
//! the broker handed to another worker after a lost channel, is told to stop, and whatever it
//! still sends is dropped. So a client never sees two answers, and a job whose grant was lost
//! on the way never hangs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::jobs::expire;
use super::rescue::level_of;
use super::{ExpiryStop, Inner, Outgoing, Phase, expired};
use crate::queue::JobFailure;

/// How long a worker has, from the grant, to report that it started the job; after that the
/// job goes back to the queue for any worker. The report is sent as soon as the grant
/// arrives, so only a lost message or a dead worker makes a grant lapse.
pub(super) const GRANT_LEASE: Duration = Duration::from_secs(10);

impl Inner {
    /// Decides a claim: the first claim of a queued job wins; a redelivery of the granted copy
    /// (its worker's channel died) is granted again only if the client has seen nothing yet.
    /// Returns the grant's lease number, or `None` to deny.
    pub(super) fn decide(
        self: &Arc<Self>,
        job_id: &str,
        copy: u8,
        redelivered: bool,
        control: &str,
    ) -> Option<u32> {
        let mut jobs = self.lock();
        let tracked = jobs.get_mut(job_id)?;
        let regrant = match &tracked.phase {
            Phase::Queued if tracked.enqueued.elapsed() > tracked.job.max_wait => {
                drop(jobs);
                self.fail(job_id, expired(job_id));
                return None;
            }
            Phase::Queued => false,
            Phase::Granted { copy: granted, .. } if *granted == copy && redelivered => {
                if tracked.tokens_sent {
                    drop(jobs);
                    self.fail(job_id, stopped_mid_answer());
                    return None;
                }
                true
            }
            Phase::Granted { .. } => return None,
        };
        if let Phase::Granted {
            control: previous, ..
        } = &tracked.phase
            && previous != control
        {
            // The worker that held the grant lost the delivery; if it still runs the job,
            // it stops.
            let _ = self.outbox.send(Outgoing::Cancel {
                control: previous.clone(),
                job_id: job_id.to_owned(),
            });
        }
        // The queue deadline no longer applies (dropping its stop ends the expiry task); the
        // lease's does, until the worker reports the start.
        tracked.expiry = ExpiryStop(CancellationToken::new());
        let stop = tracked.expiry.0.clone();
        let lease = tracked.leases;
        tracked.leases = tracked.leases.wrapping_add(1);
        tracked.phase = Phase::Granted {
            control: control.to_owned(),
            copy,
            lease,
            started: false,
        };
        // A rescued job's dispatch was booked with its rescue, a re-grant with its first grant.
        let booked = tracked.rescued || regrant;
        drop(jobs);
        if !booked {
            self.ledger().dispatched(Instant::now());
        }
        tokio::spawn(lapse(Arc::downgrade(self), job_id.to_owned(), lease, stop));
        Some(lease)
    }

    /// A worker reports the start of a job under `lease`. A report for a grant that is no
    /// longer the job's (it lapsed, or the job is gone) stops that worker.
    pub(super) fn running(&self, job_id: &str, lease: u32, control: &str) {
        if !self.keep_lease(job_id, lease) {
            let _ = self.outbox.send(Outgoing::Cancel {
                control: control.to_owned(),
                job_id: job_id.to_owned(),
            });
        }
    }

    /// Whether `lease` is the job's current grant; if so, the grant holds from now on.
    pub(super) fn keep_lease(&self, job_id: &str, lease: u32) -> bool {
        let mut jobs = self.lock();
        let Some(t) = jobs.get_mut(job_id) else {
            return false;
        };
        match &mut t.phase {
            Phase::Granted {
                lease: current,
                started,
                ..
            } if *current == lease => {
                if !*started {
                    *started = true;
                    t.expiry.0.cancel();
                }
                true
            }
            _ => false,
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

    /// A worker vanished: its jobs that sent nothing yet go back to the queue, the others end
    /// with an error (a half answer is never restarted).
    pub(super) async fn worker_gone(self: &Arc<Self>, control: &str) {
        let mut again = Vec::new();
        let mut failed = Vec::new();
        for (id, t) in self.lock().iter() {
            if matches!(&t.phase, Phase::Granted { control: c, .. } if c == control) {
                if t.tokens_sent {
                    failed.push(id.clone());
                } else {
                    again.push(id.clone());
                }
            }
        }
        for id in failed {
            tracing::warn!(job = %id, "worker vanished mid-answer");
            self.fail(&id, stopped_mid_answer());
        }
        for id in &again {
            tracing::warn!(job = %id, "worker vanished before answering; job queued again");
        }
        self.queue_again(again).await;
    }

    /// Publishes a new copy of each of these jobs with this session's reply queue, at the
    /// level it competes at, and queues it again: after a lost worker, a lapsed grant, or a
    /// new broker session (whose reply queue the old copies do not name: their claims come
    /// back unroutable and their workers drop them). A job that cannot be published ends with
    /// an error rather than waiting for nothing.
    pub(super) async fn queue_again(self: &Arc<Self>, ids: Vec<String>) {
        let mut copies = Vec::new();
        {
            let mut jobs = self.lock();
            for id in ids {
                let Some(t) = jobs.get_mut(&id) else { continue };
                t.phase = Phase::Queued;
                t.expiry = ExpiryStop(CancellationToken::new());
                let copy = t.copies;
                t.copies = t.copies.saturating_add(1);
                copies.push((
                    Arc::clone(&t.job),
                    copy,
                    level_of(t),
                    t.enqueued,
                    t.expiry.0.clone(),
                ));
            }
        }
        for (job, copy, level, enqueued, stop_expiry) in copies {
            let remaining = job.max_wait.saturating_sub(enqueued.elapsed());
            if let Err(e) = self.publish_copy(&job, copy, level, remaining).await {
                tracing::warn!(job = %job.id, error = %e, "could not queue the job again");
                self.fail(
                    &job.id,
                    JobFailure::new(
                        503,
                        "the message broker could not take this request again; retry it",
                    ),
                );
                continue;
            }
            tokio::spawn(expire(
                Arc::downgrade(self),
                job.id.clone(),
                enqueued + job.max_wait,
                stop_expiry,
            ));
        }
    }
}

fn stopped_mid_answer() -> JobFailure {
    JobFailure::new(502, "the worker running this request stopped mid-answer")
}

/// Ends grant `lease` of a job if its worker has not reported the start within the lease:
/// the job goes back to the queue and the worker, if it is alive after all, is told to stop.
/// While the broker blocks publishing (a resource alarm) no worker can report, so the lease
/// waits for the alarm to end.
async fn lapse(
    inner: std::sync::Weak<Inner>,
    job_id: String,
    lease: u32,
    started: CancellationToken,
) {
    let mut deadline = Instant::now() + GRANT_LEASE;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = started.cancelled() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        if inner.shutdown.is_cancelled() {
            return;
        }
        let control = match inner.lock().get(&job_id).map(|t| &t.phase) {
            Some(Phase::Granted {
                lease: current,
                started: false,
                control,
                ..
            }) if *current == lease => control.clone(),
            _ => return,
        };
        if inner.status_lock().blocked {
            deadline = Instant::now() + GRANT_LEASE;
            continue;
        }
        tracing::warn!(job = %job_id, "the worker did not start the job within its lease; queued again");
        let _ = inner.outbox.send(Outgoing::Cancel {
            control,
            job_id: job_id.clone(),
        });
        inner.queue_again(vec![job_id]).await;
        return;
    }
}
