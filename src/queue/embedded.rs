//! The embedded queue: the same semantics as the RabbitMQ backend (priority by level, aging,
//! cancellation, a claim granted once) inside one process, with no setup.
//!
//! Jobs sit in one FIFO per base level, keyed by an arrival sequence number. Within a FIFO the
//! oldest job always has the highest effective level, so the next job to run is one of the five
//! heads: dispatch costs O(levels + log n) however many jobs wait. Aging is computed at dispatch
//! time from the job's wait, so a job is promoted exactly once per level by construction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::priority::{LEVELS, effective_level};
use super::{
    Assignment, BackendHealth, Delivery, Job, JobBoard, JobEvent, JobFailure, JobQueue, JobTicket,
    QueueError, QueueSnapshot, TierDepth, WorkQueue,
};

/// Events a worker may send ahead of a slow client before it waits.
const EVENT_BUFFER: usize = 64;

/// In-process priority queue with aging.
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    ready: Notify,
    aging: Duration,
    max_queued: HashMap<String, usize>,
    running: AtomicUsize,
    board: Arc<JobBoard>,
    /// Wakes the expiry task when an earlier deadline arrives or the queue goes away.
    expiry_wake: Arc<Notify>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.expiry_wake.notify_one();
    }
}

#[derive(Debug, Default)]
struct State {
    levels: [BTreeMap<u64, Queued>; LEVELS],
    location: HashMap<String, (usize, u64)>,
    /// (deadline, level, seq) of every queued job, so expiry needs no scan.
    deadlines: BTreeSet<(Instant, usize, u64)>,
    queued_per_tier: HashMap<String, usize>,
    next_seq: u64,
    closed: bool,
}

#[derive(Debug)]
struct Queued {
    job: Job,
    enqueued: Instant,
    events: mpsc::Sender<JobEvent>,
    cancel: CancellationToken,
}

impl EmbeddedQueue {
    /// A queue whose jobs rise one level per `aging`, with a limit of queued jobs per tier.
    pub fn new(aging: Duration, max_queued: HashMap<String, usize>) -> Self {
        let expiry_wake = Arc::new(Notify::new());
        let queue = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                ready: Notify::new(),
                aging,
                max_queued,
                running: AtomicUsize::new(0),
                board: Arc::default(),
                expiry_wake: Arc::clone(&expiry_wake),
            }),
        };
        tokio::spawn(expire(Arc::downgrade(&queue.inner), expiry_wake));
        queue
    }

    /// Stops dispatching: waiting workers return `Closed` and queued jobs fail with 503.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner
            .remove_queued(None, "the server is shutting down; retry shortly");
        self.inner.ready.notify_waiters();
    }
}

impl Inner {
    /// Removes the queued jobs of `tier` (all when `None`) and fails them with `message`.
    fn remove_queued(&self, tier: Option<&str>, message: &str) -> usize {
        let removed: Vec<Queued> = {
            let mut state = self.lock();
            let doomed: Vec<(usize, u64)> = state
                .levels
                .iter()
                .enumerate()
                .flat_map(|(level, fifo)| {
                    fifo.iter()
                        .filter(|(_, q)| tier.is_none_or(|t| q.job.tier == t))
                        .map(move |(&seq, _)| (level, seq))
                })
                .collect();
            doomed
                .into_iter()
                .filter_map(|(level, seq)| state.remove(level, seq))
                .collect()
        };
        for q in &removed {
            // A full buffer means the client is not reading; it will see the end of its stream.
            let _ = q
                .events
                .try_send(JobEvent::Failed(JobFailure::new(503, message)));
        }
        removed.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than refusing all further work, so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes and returns the job that should run next, dropping expired ones on the way.
    fn pop(&self) -> Result<Option<Queued>, QueueError> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::Closed);
        }
        loop {
            let best = state
                .levels
                .iter()
                .enumerate()
                .filter_map(|(level, fifo)| {
                    let (&seq, q) = fifo.first_key_value()?;
                    let eff = effective_level(level as u8, now - q.enqueued, self.aging);
                    Some((eff, std::cmp::Reverse(seq), level))
                })
                .max();
            let Some((_, std::cmp::Reverse(seq), level)) = best else {
                return Ok(None);
            };
            let Some(q) = state.remove(level, seq) else {
                return Ok(None);
            };
            if now - q.enqueued > q.job.max_wait {
                let _ = q.events.try_send(JobEvent::Failed(expired(&q.job)));
                continue;
            }
            return Ok(Some(q));
        }
    }
}

fn expired(job: &Job) -> JobFailure {
    JobFailure::new(
        503,
        format!(
            "the request waited longer than the {} tier's limit of {} s in the queue",
            job.tier,
            job.max_wait.as_secs()
        ),
    )
}

/// Fails queued jobs at their tier's deadline, even while no worker is free to look at them.
async fn expire(inner: std::sync::Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let wakeup = wake.notified();
        tokio::pin!(wakeup);
        wakeup.as_mut().enable();
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            let now = Instant::now();
            let expired: Vec<Queued> = {
                let mut state = inner.lock();
                if state.closed {
                    return;
                }
                let mut expired = Vec::new();
                while let Some(&(deadline, level, seq)) = state.deadlines.first()
                    && deadline <= now
                {
                    state.deadlines.pop_first();
                    expired.extend(state.remove(level, seq));
                }
                expired
            };
            for q in expired {
                let _ = q.events.try_send(JobEvent::Failed(self::expired(&q.job)));
            }
            inner
                .lock()
                .deadlines
                .first()
                .map(|&(deadline, _, _)| deadline)
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => {}
                    () = &mut wakeup => {}
                }
            }
            None => wakeup.await,
        }
    }
}

impl State {
    fn remove(&mut self, level: usize, seq: u64) -> Option<Queued> {
        let q = self.levels[level].remove(&seq)?;
        self.deadlines
            .remove(&(q.enqueued + q.job.max_wait, level, seq));
        self.location.remove(&q.job.id);
        if let Some(n) = self.queued_per_tier.get_mut(&q.job.tier) {
            *n = n.saturating_sub(1);
        }
        Some(q)
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn submit(&self, job: Job) -> Result<JobTicket, QueueError> {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let cancel = CancellationToken::new();
        // The ticket exists before the job is queued; if admission fails it is dropped
        // again, and its cancel hook finds nothing to remove.
        let ticket = {
            let cancel = cancel.clone();
            let inner = Arc::downgrade(&self.inner);
            let job_id = job.id.clone();
            JobTicket::new(&job, rx, Arc::clone(&self.inner.board), move || {
                cancel.cancel();
                if let Some(inner) = inner.upgrade() {
                    let mut state = inner.lock();
                    if let Some(&(level, seq)) = state.location.get(&job_id) {
                        state.remove(level, seq);
                    }
                }
            })
        };
        {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(QueueError::Closed);
            }
            let limit = self.inner.max_queued.get(&job.tier).copied();
            let depth = state.queued_per_tier.entry(job.tier.clone()).or_default();
            if let Some(max_queued) = limit.filter(|max| *depth >= *max) {
                return Err(QueueError::TierFull {
                    tier: job.tier,
                    max_queued,
                });
            }
            *depth += 1;
            let seq = state.next_seq;
            state.next_seq += 1;
            let level = usize::from(job.base_level).min(LEVELS - 1);
            state.location.insert(job.id.clone(), (level, seq));
            let enqueued = Instant::now();
            let deadline = enqueued + job.max_wait;
            let earliest = state
                .deadlines
                .first()
                .is_none_or(|&(d, _, _)| deadline < d);
            state.deadlines.insert((deadline, level, seq));
            state.levels[level].insert(
                seq,
                Queued {
                    job,
                    enqueued,
                    events: tx,
                    cancel,
                },
            );
            if earliest {
                self.inner.expiry_wake.notify_one();
            }
        }
        self.inner.ready.notify_one();
        Ok(ticket)
    }

    fn position(&self, job_id: &str) -> Option<usize> {
        let now = Instant::now();
        let state = self.inner.lock();
        let &(level, seq) = state.location.get(job_id)?;
        let me = state.levels[level].get(&seq)?;
        let my_level = effective_level(level as u8, now - me.enqueued, self.inner.aging);
        // Within one FIFO, "ahead of me" holds for a prefix (older entries rank higher).
        let ahead = state
            .levels
            .iter()
            .enumerate()
            .map(|(l, fifo)| {
                fifo.iter()
                    .take_while(|&(&s, q)| {
                        let eff = effective_level(l as u8, now - q.enqueued, self.inner.aging);
                        eff > my_level || (eff == my_level && s < seq)
                    })
                    .count()
            })
            .sum();
        Some(ahead)
    }

    fn clear(&self, tier: Option<&str>) -> usize {
        self.inner
            .remove_queued(tier, "the queue was cleared by an administrator")
    }

    fn board(&self) -> &JobBoard {
        &self.inner.board
    }

    fn health(&self) -> BackendHealth {
        let closed = self.inner.lock().closed;
        BackendHealth {
            backend: "embedded",
            ok: !closed,
            detail: if closed {
                "shutting down"
            } else {
                "in process"
            }
            .to_owned(),
        }
    }

    fn snapshot(&self) -> QueueSnapshot {
        let now = Instant::now();
        let state = self.inner.lock();
        let mut tiers: BTreeMap<&str, TierDepth> = BTreeMap::new();
        for q in state.levels.iter().flat_map(BTreeMap::values) {
            let waited = (now - q.enqueued).as_secs_f64();
            let entry = tiers.entry(&q.job.tier).or_insert_with(|| TierDepth {
                tier: q.job.tier.clone(),
                queued: 0,
                oldest_wait_secs: 0.0,
            });
            entry.queued += 1;
            entry.oldest_wait_secs = entry.oldest_wait_secs.max(waited);
        }
        QueueSnapshot {
            tiers: tiers.into_values().collect(),
            running: self.inner.running.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl WorkQueue for EmbeddedQueue {
    async fn next(&self) -> Result<Box<dyn Delivery>, QueueError> {
        loop {
            // Register interest before looking, so a submit between the look and the wait
            // is not missed.
            let notified = self.inner.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(q) = self.inner.pop()? {
                return Ok(Box::new(EmbeddedDelivery {
                    queued: q,
                    inner: Arc::clone(&self.inner),
                }));
            }
            notified.await;
        }
    }
}

#[derive(Debug)]
struct EmbeddedDelivery {
    queued: Queued,
    inner: Arc<Inner>,
}

#[async_trait]
impl Delivery for EmbeddedDelivery {
    fn job(&self) -> &Job {
        &self.queued.job
    }

    async fn claim(self: Box<Self>, _worker: &str) -> Option<Box<dyn Assignment>> {
        // The queue already gave this job to one worker only; the client may still have left.
        if self.queued.cancel.is_cancelled() || self.queued.events.is_closed() {
            return None;
        }
        self.inner.running.fetch_add(1, Ordering::Relaxed);
        Some(Box::new(EmbeddedAssignment {
            queued: self.queued,
            inner: self.inner,
        }))
    }
}

#[derive(Debug)]
struct EmbeddedAssignment {
    queued: Queued,
    inner: Arc<Inner>,
}

#[async_trait]
impl Assignment for EmbeddedAssignment {
    fn job(&self) -> &Job {
        &self.queued.job
    }

    async fn send(&mut self, event: JobEvent) -> Result<(), QueueError> {
        self.queued
            .events
            .send(event)
            .await
            .map_err(|_| QueueError::ClientGone)
    }

    fn cancelled(&self) -> CancellationToken {
        self.queued.cancel.clone()
    }

    async fn finish(self: Box<Self>) {}
}

impl Drop for EmbeddedAssignment {
    fn drop(&mut self) {
        self.inner.running.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;
