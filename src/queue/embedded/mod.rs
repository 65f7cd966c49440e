//! The embedded queue: the same semantics as the RabbitMQ backend (levels, rationed rescues,
//! early shedding, cancellation, a claim granted once) inside one process, with no setup.
//!
//! Jobs wait in lanes, one FIFO per (tier, base level, max wait). Within a lane the oldest job
//! ranks first, starves first and has the earliest deadline, so the next job to run, the next
//! to rescue and the next to expire are all lane heads: dispatch and expiry cost O(lanes)
//! whatever the depth. A job that leaves from the middle of a lane leaves a hole that is
//! dropped when it reaches the head.
//!
//! - [`dispatch`]: which job runs next, where a job stands, the per-tier view;
//! - [`expiry`]: fails queued jobs at their deadline;
//! - [`assignment`]: a job handed to a worker, and the events it sends.
//!
//! A queued job holds no event buffer: its ticket gets the event channel when a worker claims
//! the job (see [`TicketEvents::OnClaim`]), which keeps a deep queue small.

mod assignment;
mod dispatch;
mod expiry;
mod lane;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::{Notify, oneshot};

use super::ledger::DispatchLedger;
use super::{
    BackendHealth, Delivery, Job, JobBoard, JobFailure, JobQueue, JobStanding, JobTicket,
    QueueError, QueuePolicy, QueueSnapshot, SchedulingView, TicketEvents, WorkQueue,
};
use assignment::EmbeddedDelivery;
use lane::{ById, Lane, Queued};

/// In-process priority queue with rationed rescues.
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    ready: Notify,
    policy: QueuePolicy,
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

#[derive(Debug)]
struct State {
    lanes: Vec<Lane>,
    /// Lane and place in it of every queued job.
    location: HashMap<ById, (usize, u64)>,
    queued_per_tier: HashMap<String, usize>,
    /// Arrival order across lanes, for ties between lane heads.
    next_arrival: u64,
    ledger: DispatchLedger,
    closed: bool,
}

impl State {
    /// The lane of `job`, created on first use (a handful per tier at most).
    fn lane_of(&mut self, job: &Job, policy: &QueuePolicy) -> usize {
        let level = job.base_level.min(super::schedule::RESCUE_LEVEL - 1);
        if let Some(i) = self
            .lanes
            .iter()
            .position(|l| l.holds(&job.tier, level, job.max_wait))
        {
            return i;
        }
        let starvation = policy.starvation(&job.tier);
        self.lanes
            .push(Lane::new(job.tier.clone(), level, job.max_wait, starvation));
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
    /// A queue scheduling by `policy`.
    pub fn new(policy: QueuePolicy) -> Self {
        let expiry_wake = Arc::new(Notify::new());
        let queue = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    lanes: Vec::new(),
                    location: HashMap::new(),
                    queued_per_tier: HashMap::new(),
                    next_arrival: 0,
                    ledger: DispatchLedger::new(policy.rescue_share),
                    closed: false,
                }),
                ready: Notify::new(),
                policy,
                running: AtomicUsize::new(0),
                board: Arc::default(),
                expiry_wake: Arc::clone(&expiry_wake),
            }),
        };
        tokio::spawn(expiry::run(Arc::downgrade(&queue.inner), expiry_wake));
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
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn submit(&self, job: Job) -> Result<JobTicket, QueueError> {
        let job = Arc::new(job);
        let (claim, claimed) = oneshot::channel();
        // The ticket exists before the job is queued; if admission fails it is dropped
        // again, and its hook finds nothing to remove.
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
            let enqueued = Instant::now();
            self.inner.admit(&state, &job, enqueued)?;
            *state.queued_per_tier.entry(job.tier.clone()).or_default() += 1;
            let arrival = state.next_arrival;
            state.next_arrival += 1;
            let lane = state.lane_of(&job, &self.inner.policy);
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

    fn standing(&self, job_id: &str) -> Option<JobStanding> {
        self.inner.standing(job_id)
    }

    fn scheduling(&self) -> SchedulingView {
        self.inner.lock().ledger.view(Instant::now())
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
        self.inner.snapshot()
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
                return Ok(Box::new(EmbeddedDelivery::new(q, Arc::clone(&self.inner))));
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests;
