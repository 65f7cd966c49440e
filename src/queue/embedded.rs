//! The embedded queue: the same semantics as the RabbitMQ backend (priority by level, aging,
//! cancellation, a claim granted once) inside one process, with no setup.
//!
//! Jobs wait in lanes, one FIFO per (tier, base level, max wait). Within a lane the oldest job
//! has aged furthest and has the earliest deadline, so the next job to run is one of the lane
//! heads, and so is the next job to expire: dispatch and expiry cost O(lanes) whatever the
//! depth. Aging is computed at dispatch from the job's wait, so a job is promoted exactly once
//! per level by construction. A job that leaves from the middle of a lane leaves a hole that is
//! dropped when it reaches the head.
//!
//! A queued job holds no event buffer: its ticket gets the event channel when a worker claims
//! the job (see [`TicketEvents::OnClaim`]), which keeps a deep queue small.

mod lane;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::priority::effective_level;
use super::{
    Assignment, BackendHealth, Claimed, Delivery, Job, JobBoard, JobEvent, JobFailure, JobQueue,
    JobTicket, QueueError, QueueSnapshot, TicketEvents, TierDepth, WorkQueue,
};
use lane::{ById, Lane, Queued};

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
    lanes: Vec<Lane>,
    /// Lane and place in it of every queued job.
    location: HashMap<ById, (usize, u64)>,
    queued_per_tier: HashMap<String, usize>,
    /// Arrival order across lanes, for ties between lane heads.
    next_arrival: u64,
    closed: bool,
}

impl State {
    /// The lane of `job`, created on first use (a handful per tier at most).
    fn lane_of(&mut self, job: &Job) -> usize {
        let level = job.base_level.min(super::priority::TOP_LEVEL);
        if let Some(i) = self
            .lanes
            .iter()
            .position(|l| l.holds(&job.tier, level, job.max_wait))
        {
            return i;
        }
        self.lanes
            .push(Lane::new(job.tier.clone(), level, job.max_wait));
        self.lanes.len() - 1
    }

    /// Takes the job at `place` of `lane` out of the queue.
    fn remove(&mut self, lane: usize, place: u64) -> Option<Queued> {
        let q = self.lanes.get_mut(lane)?.take(place)?;
        self.forget(&q);
        Some(q)
    }

    /// Takes the head of `lane` out of the queue.
    fn pop_head(&mut self, lane: usize) -> Option<Queued> {
        let q = self.lanes.get_mut(lane)?.pop_head()?;
        self.forget(&q);
        Some(q)
    }

    fn forget(&mut self, q: &Queued) {
        self.location.remove(q.job.id.as_str());
        if let Some(n) = self.queued_per_tier.get_mut(&q.job.tier) {
            *n = n.saturating_sub(1);
        }
    }

    /// The earliest deadline of any queued job.
    fn next_deadline(&self) -> Option<Instant> {
        self.lanes.iter().filter_map(Lane::head_deadline).min()
    }
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
            let lanes: Vec<usize> = (0..state.lanes.len())
                .filter(|&i| tier.is_none_or(|t| state.lanes[i].tier() == t))
                .collect();
            let mut removed = Vec::new();
            for lane in lanes {
                while let Some(q) = state.pop_head(lane) {
                    removed.push(q);
                }
            }
            removed
        };
        let count = removed.len();
        for q in removed {
            q.fail(JobFailure::new(503, message));
        }
        count
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
                .lanes
                .iter()
                .enumerate()
                .filter_map(|(i, lane)| {
                    let (arrival, enqueued) = lane.head()?;
                    let eff = effective_level(lane.level(), now - enqueued, self.aging);
                    Some((eff, std::cmp::Reverse(arrival), i, enqueued))
                })
                .max();
            let Some((_, _, lane, enqueued)) = best else {
                return Ok(None);
            };
            let Some(q) = state.pop_head(lane) else {
                return Ok(None);
            };
            if now - enqueued > q.job.max_wait {
                let failure = expired(&q.job);
                q.fail(failure);
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
                for lane in 0..state.lanes.len() {
                    while state.lanes[lane]
                        .head_deadline()
                        .is_some_and(|deadline| deadline <= now)
                    {
                        expired.extend(state.pop_head(lane));
                    }
                }
                expired
            };
            for q in expired {
                let failure = self::expired(&q.job);
                q.fail(failure);
            }
            inner.lock().next_deadline()
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

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn submit(&self, job: Job) -> Result<JobTicket, QueueError> {
        let job = Arc::new(job);
        let (claim, claimed) = oneshot::channel();
        // The ticket exists before the job is queued; if admission fails it is dropped
        // again, and its cancel hook finds nothing to remove.
        let ticket = {
            let inner = Arc::downgrade(&self.inner);
            let job = Arc::clone(&job);
            JobTicket::new(
                Arc::clone(&job),
                TicketEvents::OnClaim(claimed),
                Arc::clone(&self.inner.board),
                move || {
                    if let Some(inner) = inner.upgrade() {
                        let mut state = inner.lock();
                        if let Some(&(lane, place)) = state.location.get(job.id.as_str()) {
                            state.remove(lane, place);
                        }
                    }
                },
            )
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
                    tier: job.tier.clone(),
                    max_queued,
                });
            }
            *depth += 1;
            let arrival = state.next_arrival;
            state.next_arrival += 1;
            let lane = state.lane_of(&job);
            let enqueued = Instant::now();
            let earliest = state
                .next_deadline()
                .is_none_or(|d| enqueued + job.max_wait < d);
            let place = state.lanes[lane].push(
                arrival,
                enqueued,
                Queued {
                    job: Arc::clone(&job),
                    claim,
                },
            );
            state.location.insert(ById(job), (lane, place));
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
        let &(lane, place) = state.location.get(job_id)?;
        let (arrival, enqueued) = state.lanes[lane].at(place)?;
        let aging = self.inner.aging;
        let me = (
            effective_level(state.lanes[lane].level(), now - enqueued, aging),
            std::cmp::Reverse(arrival),
        );
        // Within a lane, "ahead of me" holds for a prefix (older jobs rank higher).
        let ahead = state
            .lanes
            .iter()
            .map(|l| {
                l.count_ahead(|arrival, enqueued| {
                    let eff = effective_level(l.level(), now - enqueued, aging);
                    (eff, std::cmp::Reverse(arrival)) > me
                })
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
        let mut tiers: BTreeMap<&str, TierDepth> = state
            .queued_per_tier
            .iter()
            .filter(|&(_, &queued)| queued > 0)
            .map(|(tier, &queued)| {
                let depth = TierDepth {
                    tier: tier.clone(),
                    queued,
                    oldest_wait_secs: 0.0,
                };
                (tier.as_str(), depth)
            })
            .collect();
        for lane in &state.lanes {
            if let (Some((_, enqueued)), Some(depth)) = (lane.head(), tiers.get_mut(lane.tier())) {
                let waited = (now - enqueued).as_secs_f64();
                depth.oldest_wait_secs = depth.oldest_wait_secs.max(waited);
            }
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

    async fn claim(self: Box<Self>, worker: &str, slots: usize) -> Option<Box<dyn Assignment>> {
        // The queue already gave this job to one worker only; the client may still have left.
        let Queued { job, claim, .. } = self.queued;
        if claim.is_closed() {
            return None;
        }
        let (events, receiver) = mpsc::channel(EVENT_BUFFER);
        let started = JobEvent::Started {
            worker: worker.to_owned(),
            slots,
        };
        // The channel is new and empty, so the start always fits.
        events.try_send(started).ok()?;
        let cancel = CancellationToken::new();
        let claimed = Claimed {
            events: receiver,
            cancel: cancel.clone(),
        };
        claim.send(Ok(claimed)).ok()?;
        self.inner.running.fetch_add(1, Ordering::Relaxed);
        Some(Box::new(EmbeddedAssignment {
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
        self.events
            .send(event)
            .await
            .map_err(|_| QueueError::ClientGone)
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

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;
