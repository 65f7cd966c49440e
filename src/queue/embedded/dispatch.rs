//! Which queued job runs next (highest level, then oldest, except a rationed rescue of the
//! oldest starving job), whether a new job is admitted, and where a job stands.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::expiry::expired;
use super::lane::Queued;
use super::{Inner, State};
use crate::queue::schedule::{Standing, predicted_wait};
use crate::queue::{Job, JobStanding, QueueError, QueueSnapshot, TierDepth};

impl Inner {
    /// Removes and returns the job that should run next, dropping expired ones on the way.
    pub(super) fn pop(&self) -> Result<Option<Queued>, QueueError> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::Closed);
        }
        loop {
            let Some((lane, rescue)) = next_lane(&state, now) else {
                return Ok(None);
            };
            let Some((_, enqueued)) = state.lanes[lane].head() else {
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
            if rescue {
                state.ledger.rescued(now, &q.job.tier);
                tracing::debug!(job = %q.job.id, tier = %q.job.tier, "starving job rescued");
            } else {
                state.ledger.dispatched(now);
            }
            return Ok(Some(q));
        }
    }

    /// Refuses a job whose tier is full, or whose predicted wait already exceeds its limit.
    pub(super) fn admit(&self, state: &State, job: &Job, now: Instant) -> Result<(), QueueError> {
        let depth = state.queued_per_tier.get(&job.tier).copied().unwrap_or(0);
        if let Some(max_queued) = self.policy.max_queued(&job.tier).filter(|m| depth >= *m) {
            return Err(QueueError::TierFull {
                tier: job.tier.clone(),
                max_queued,
            });
        }
        let level = job.base_level;
        let standing = Standing {
            ahead: queued_where(state, |l| l >= level),
            older_rescues: queued_where(state, |l| l <= level),
            until_starving: self.policy.starvation(&job.tier),
        };
        let per_sec = state.ledger.per_sec(now);
        match predicted_wait(standing, per_sec, self.policy.rescue_share) {
            Some(wait) if wait > job.max_wait => Err(QueueError::WouldWait {
                tier: job.tier.clone(),
                wait,
                max_wait: job.max_wait,
            }),
            _ => Ok(()),
        }
    }

    /// Where the queued job `job_id` stands.
    pub(super) fn standing(&self, job_id: &str) -> Option<JobStanding> {
        let now = Instant::now();
        let state = self.lock();
        let &(lane, place) = state.location.get(job_id)?;
        let mine = &state.lanes[lane];
        let (arrival, enqueued) = mine.at(place)?;
        let (level, rank) = (mine.level(), (mine.level(), Reverse(arrival)));
        // Within a lane, "ahead of me" and "older than me" each hold for a prefix.
        let ahead = state
            .lanes
            .iter()
            .map(|l| l.count_ahead(|a, _| (l.level(), Reverse(a)) > rank))
            .sum();
        let older_rescues = state
            .lanes
            .iter()
            .filter(|l| l.level() <= level)
            .map(|l| l.count_ahead(|a, _| a < arrival))
            .sum();
        let standing = Standing {
            ahead,
            older_rescues,
            until_starving: mine.starvation().saturating_sub(now - enqueued),
        };
        let per_sec = state.ledger.per_sec(now);
        Some(JobStanding {
            position: ahead,
            eta: predicted_wait(standing, per_sec, self.policy.rescue_share),
        })
    }

    /// Depth, oldest wait and starving jobs per tier, and running jobs.
    pub(super) fn snapshot(&self) -> QueueSnapshot {
        let now = Instant::now();
        let state = self.lock();
        let mut tiers: BTreeMap<&str, TierDepth> = BTreeMap::new();
        for lane in &state.lanes {
            let Some((_, enqueued)) = lane.head() else {
                continue;
            };
            let depth = tiers.entry(lane.tier()).or_insert_with(|| TierDepth {
                tier: lane.tier().to_owned(),
                queued: 0,
                oldest_wait_secs: 0.0,
                starving: 0,
            });
            depth.queued += lane.queued();
            depth.oldest_wait_secs = depth.oldest_wait_secs.max((now - enqueued).as_secs_f64());
            depth.starving += lane.count_ahead(|_, e| now - e >= lane.starvation());
        }
        QueueSnapshot {
            tiers: tiers.into_values().collect(),
            running: self.running.load(Ordering::Relaxed),
        }
    }
}

/// The lane whose head runs next, and whether that is a rescue: the highest level then the
/// oldest, unless the ration allows lifting the oldest starving job of a lower level.
fn next_lane(state: &State, now: Instant) -> Option<(usize, bool)> {
    let (level, _, normal) = state
        .lanes
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            l.head()
                .map(|(arrival, _)| (l.level(), Reverse(arrival), i))
        })
        .max()?;
    if !state.ledger.may_rescue() {
        return Some((normal, false));
    }
    let starving = state
        .lanes
        .iter()
        .enumerate()
        .filter(|(_, l)| l.level() < level)
        .filter_map(|(i, l)| {
            let (arrival, enqueued) = l.head()?;
            (now - enqueued >= l.starvation()).then_some((arrival, i))
        })
        .min();
    Some(starving.map_or((normal, false), |(_, lane)| (lane, true)))
}

/// Queued jobs in lanes whose level passes `keep`.
fn queued_where(state: &State, keep: impl Fn(u8) -> bool) -> usize {
    state
        .lanes
        .iter()
        .filter(|l| keep(l.level()))
        .map(super::lane::Lane::queued)
        .sum()
}
