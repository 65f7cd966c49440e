//! One FIFO of the embedded queue: the jobs of one tier at one base level and max wait, in
//! arrival order, with holes where jobs left early. The oldest job is the head: it ranks
//! first, starves first and expires first.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::queue::{Claimed, Job, JobFailure};

/// A queued job: the job and the way to hand its ticket the event channel (or a failure).
#[derive(Debug)]
pub(super) struct Queued {
    pub job: Arc<Job>,
    pub claim: oneshot::Sender<Result<Claimed, JobFailure>>,
}

impl Queued {
    /// Ends the job before any worker ran it; a client that left has nobody to tell.
    pub fn fail(self, failure: JobFailure) {
        let _ = self.claim.send(Err(failure));
    }
}

/// A job keyed by its id, so the index of queued jobs shares the job instead of copying ids.
#[derive(Debug)]
pub(super) struct ById(pub Arc<Job>);

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash like the `str` it borrows as.
        self.0.id.as_str().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

#[derive(Debug)]
struct Slot {
    /// Arrival number across all lanes.
    arrival: u64,
    enqueued: Instant,
    /// `None` once the job left before its turn.
    job: Option<Queued>,
}

#[derive(Debug)]
pub(super) struct Lane {
    tier: String,
    level: u8,
    max_wait: Duration,
    /// The tier's starvation time: a head that waited this long may be rescued.
    starvation: Duration,
    /// Place of the first slot; places keep counting as slots leave the front.
    first: u64,
    /// Never starts with a hole.
    slots: VecDeque<Slot>,
    holes: usize,
}

impl Lane {
    pub fn new(tier: String, level: u8, max_wait: Duration, starvation: Duration) -> Self {
        Self {
            tier,
            level,
            max_wait,
            starvation,
            first: 0,
            slots: VecDeque::new(),
            holes: 0,
        }
    }

    pub fn holds(&self, tier: &str, level: u8, max_wait: Duration) -> bool {
        self.tier == tier && self.level == level && self.max_wait == max_wait
    }

    pub fn tier(&self) -> &str {
        &self.tier
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    pub fn starvation(&self) -> Duration {
        self.starvation
    }

    /// Jobs still queued in this lane.
    pub fn queued(&self) -> usize {
        self.slots.len() - self.holes
    }

    /// Appends a job; returns its place.
    pub fn push(&mut self, arrival: u64, enqueued: Instant, job: Queued) -> u64 {
        self.slots.push_back(Slot {
            arrival,
            enqueued,
            job: Some(job),
        });
        self.first + self.slots.len() as u64 - 1
    }

    /// Arrival number and enqueue time of the oldest job.
    pub fn head(&self) -> Option<(u64, Instant)> {
        self.slots.front().map(|s| (s.arrival, s.enqueued))
    }

    /// When the oldest job's wait runs out.
    pub fn head_deadline(&self) -> Option<Instant> {
        self.slots.front().map(|s| s.enqueued + self.max_wait)
    }

    /// Arrival number and enqueue time of the job at `place`, if it is still queued.
    pub fn at(&self, place: u64) -> Option<(u64, Instant)> {
        let slot = self.slots.get(self.index(place)?)?;
        slot.job.as_ref().map(|_| (slot.arrival, slot.enqueued))
    }

    pub fn pop_head(&mut self) -> Option<Queued> {
        let slot = self.slots.pop_front()?;
        self.first += 1;
        self.skip_holes();
        slot.job
    }

    /// Takes the job at `place` out, leaving a hole unless it was the head.
    pub fn take(&mut self, place: u64) -> Option<Queued> {
        let index = self.index(place)?;
        let job = self.slots.get_mut(index)?.job.take()?;
        if index == 0 {
            self.slots.pop_front();
            self.first += 1;
            self.skip_holes();
        } else {
            self.holes += 1;
        }
        Some(job)
    }

    /// Queued jobs of the prefix of this lane for which `ahead(arrival, enqueued)` holds; the
    /// caller guarantees that it holds for a prefix (older jobs rank higher).
    pub fn count_ahead(&self, ahead: impl Fn(u64, Instant) -> bool) -> usize {
        let prefix = self.slots.partition_point(|s| ahead(s.arrival, s.enqueued));
        if self.holes == 0 {
            prefix
        } else {
            self.slots
                .range(..prefix)
                .filter(|s| s.job.is_some())
                .count()
        }
    }

    fn index(&self, place: u64) -> Option<usize> {
        usize::try_from(place.checked_sub(self.first)?).ok()
    }

    fn skip_holes(&mut self) {
        while self.slots.front().is_some_and(|s| s.job.is_none()) {
            self.slots.pop_front();
            self.first += 1;
            self.holes = self.holes.saturating_sub(1);
        }
    }
}
