//! The scheduling rule on a RabbitMQ gateway: admission (tier limit and predicted wait across
//! every gateway), where a job stands, and the rescue task, which publishes one copy of the
//! oldest starving job at the rescue level whenever the system-wide ration allows.
//!
//! The ration is booked from this gateway's grants and rescues at once and from its peers'
//! every second, when they share their state; two gateways deciding within that second may
//! both rescue, so the share can briefly exceed its bound by one rescue per gateway.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Inner, Phase, Tracked};
use crate::queue::schedule::{LEVELS, RESCUE_LEVEL, Standing, predicted_wait};
use crate::queue::{Job, JobStanding, QueueError};

/// How often the rescue task looks for a starving job while the ration allows one.
const RESCUE_EVERY: Duration = Duration::from_millis(50);

impl Inner {
    /// Refuses a job whose tier is full, or whose predicted wait already exceeds its limit.
    pub(super) fn admit(
        &self,
        jobs: &HashMap<String, Tracked>,
        job: &Job,
    ) -> Result<(), QueueError> {
        if let Some(max_queued) = self.policy.max_queued(&job.tier) {
            let queued = jobs
                .values()
                .filter(|t| t.job.tier == job.tier && matches!(t.phase, Phase::Queued))
                .count()
                + self.peers.queued_in(&job.tier);
            if queued >= max_queued {
                return Err(QueueError::TierFull {
                    tier: job.tier.clone(),
                    max_queued,
                });
            }
        }
        let levels = self.levels(jobs);
        let level = usize::from(job.base_level);
        let standing = Standing {
            ahead: levels[level.min(LEVELS - 1)..].iter().sum(),
            older_rescues: levels[..=level.min(LEVELS - 1)].iter().sum(),
            until_starving: self.policy.starvation(&job.tier),
        };
        let per_sec = self.ledger().per_sec(Instant::now());
        match predicted_wait(standing, per_sec, self.policy.rescue_share) {
            Some(wait) if wait > job.max_wait => Err(QueueError::WouldWait {
                tier: job.tier.clone(),
                wait,
                max_wait: job.max_wait,
            }),
            _ => Ok(()),
        }
    }

    /// Queued jobs per level, this gateway's and its peers'.
    fn levels(&self, jobs: &HashMap<String, Tracked>) -> [usize; LEVELS] {
        let mut levels = self.peers.levels();
        for (level, n) in local_levels(jobs).into_iter().enumerate() {
            levels[level] += n;
        }
        levels
    }

    /// Unix milliseconds at which this gateway's oldest rescue candidate was accepted.
    pub(super) fn oldest_starving_ms(&self, jobs: &HashMap<String, Tracked>) -> Option<u64> {
        self.candidates(jobs).map(|t| t.job.enqueued_at_ms).min()
    }

    /// This gateway's queued jobs that may be rescued: starving, not yet rescued, and below a
    /// level with queued work somewhere (otherwise they run next anyway).
    fn candidates<'a>(
        &'a self,
        jobs: &'a HashMap<String, Tracked>,
    ) -> impl Iterator<Item = &'a Tracked> {
        let levels = self.levels(jobs);
        let top = levels.iter().rposition(|n| *n > 0).unwrap_or(0);
        jobs.values().filter(move |t| {
            matches!(t.phase, Phase::Queued)
                && !t.rescued
                && usize::from(t.job.base_level) < top
                && t.enqueued.elapsed() >= self.policy.starvation(&t.job.tier)
        })
    }

    /// Where one of this gateway's queued jobs stands: its own jobs ranked exactly, the
    /// peers' by level.
    pub(super) fn standing(&self, job_id: &str) -> Option<JobStanding> {
        let jobs = self.lock();
        let me = jobs
            .get(job_id)
            .filter(|t| matches!(t.phase, Phase::Queued))?;
        let rank = |t: &Tracked| (level_of(t), std::cmp::Reverse(t.enqueued));
        let mine = rank(me);
        let queued = || jobs.values().filter(|t| matches!(t.phase, Phase::Queued));
        let peers = self.peers.levels();
        let level = usize::from(mine.0).min(LEVELS - 1);
        let ahead =
            queued().filter(|t| rank(t) > mine).count() + peers[level + 1..].iter().sum::<usize>();
        let older_rescues = queued()
            .filter(|t| level_of(t) <= mine.0 && t.enqueued < me.enqueued)
            .count();
        let starvation = self.policy.starvation(&me.job.tier);
        let standing = Standing {
            ahead,
            older_rescues,
            until_starving: starvation.saturating_sub(me.enqueued.elapsed()),
        };
        let per_sec = self.ledger().per_sec(Instant::now());
        Some(JobStanding {
            position: ahead,
            eta: predicted_wait(standing, per_sec, self.policy.rescue_share),
        })
    }

    /// Rescues this gateway's oldest candidate if the ration allows and no peer has an older
    /// one.
    async fn rescue_one(&self) {
        if !self.ledger().may_rescue() {
            return;
        }
        let chosen = {
            let mut jobs = self.lock();
            let Some(oldest) = self.candidates(&jobs).min_by_key(|t| t.enqueued) else {
                return;
            };
            let id = oldest.job.id.clone();
            let peer_older = self
                .peers
                .oldest_starving_ms()
                .is_some_and(|ms| ms < oldest.job.enqueued_at_ms);
            if peer_older {
                return;
            }
            let Some(t) = jobs.get_mut(&id) else { return };
            t.rescued = true;
            let copy = t.copies;
            t.copies = t.copies.saturating_add(1);
            let remaining = t.job.max_wait.saturating_sub(t.enqueued.elapsed());
            (Arc::clone(&t.job), copy, remaining)
        };
        let (job, copy, remaining) = chosen;
        // Booked once the copy is on the broker, so a rescue counted is one a worker can take
        // (the task is sequential: no other rescue is decided meanwhile).
        match self.publish_copy(&job, copy, RESCUE_LEVEL, remaining).await {
            Ok(()) => {
                self.ledger().rescued(Instant::now(), &job.tier);
                tracing::debug!(job = %job.id, tier = %job.tier, "starving job rescued");
            }
            Err(e) => {
                // The original copy is still queued; the job may be rescued again later.
                tracing::warn!(job = %job.id, error = %e, "could not publish a rescue copy");
                if let Some(t) = self.lock().get_mut(&job.id) {
                    t.rescued = false;
                }
            }
        }
    }
}

/// This gateway's queued jobs per level (a rescued job counts at the rescue level).
pub(super) fn local_levels(jobs: &HashMap<String, Tracked>) -> [usize; LEVELS] {
    let mut levels = [0; LEVELS];
    for t in jobs.values().filter(|t| matches!(t.phase, Phase::Queued)) {
        levels[usize::from(level_of(t)).min(LEVELS - 1)] += 1;
    }
    levels
}

/// The level a queued job competes at.
pub(super) fn level_of(t: &Tracked) -> u8 {
    if t.rescued {
        RESCUE_LEVEL
    } else {
        t.job.base_level
    }
}

/// The rescue task of one gateway; ends with it.
pub(super) async fn run(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(RESCUE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.shutdown.is_cancelled() {
            return;
        }
        if inner.channel.borrow().is_some() {
            inner.rescue_one().await;
        }
    }
}
