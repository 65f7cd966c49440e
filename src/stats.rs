//! In-memory request statistics for the admin API: requests by tier and outcome, tokens by
//! tier and model, and queue-wait percentiles per tier over the last [`WAIT_WINDOW`] jobs.
//!
//! The chat handler feeds it through one call, [`Stats::track`], on the result of submitting
//! a job; the numbers are recorded once, when the job's ticket is dropped, so a request counts
//! whichever way it ends (answered, failed, or abandoned by its client). They restart at zero
//! with the process: this is a live view, not an accounting ledger.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::metrics::Metrics;
use crate::openai::Usage;
use crate::queue::{JobEnd, JobReport, JobTicket, QueueError};

/// How many recent queue waits per tier the percentiles are computed over.
pub const WAIT_WINDOW: usize = 1000;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered in full.
    Completed,
    /// Failed after it was queued (cleared, expired, Ollama error, lost worker).
    Failed,
    /// Its client left before the end.
    Cancelled,
    /// The queue refused it (tier full, shutting down).
    Rejected,
}

/// Requests of one tier by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Answered in full.
    pub completed: u64,
    /// Failed after they were queued.
    pub failed: u64,
    /// Abandoned by their clients.
    pub cancelled: u64,
    /// Refused by the queue.
    pub rejected: u64,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Requests counted.
    pub requests: u64,
    /// Prompt tokens (in).
    pub prompt: u64,
    /// Completion tokens (out).
    pub completion: u64,
}

/// Queue-wait percentiles over a tier's recent jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitPercentiles {
    /// Jobs the numbers are computed over (at most [`WAIT_WINDOW`]).
    pub samples: usize,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// Longest.
    pub max: Duration,
}

/// What one tier's requests did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TierStats {
    /// Requests by outcome.
    pub outcomes: Outcomes,
    /// Tokens of completed requests.
    pub tokens: Tokens,
    /// `None` until a job of the tier has started.
    pub queue_wait: Option<WaitPercentiles>,
}

/// A copy of the numbers at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// By tier name.
    pub tiers: BTreeMap<String, TierStats>,
    /// By (tier, model): tokens of completed requests.
    pub models: BTreeMap<(String, String), Tokens>,
}

#[derive(Debug, Default)]
struct TierTally {
    outcomes: Outcomes,
    tokens: Tokens,
    waits: VecDeque<Duration>,
}

#[derive(Debug, Default)]
struct Tally {
    tiers: BTreeMap<String, TierTally>,
    models: BTreeMap<(String, String), Tokens>,
}

/// The recorder, shared by the chat handler (writes) and the admin API (reads).
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    started_at: u64,
    tally: Mutex<Tally>,
    metrics: Metrics,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            tally: Mutex::default(),
            metrics: Metrics::default(),
        }
    }
}

impl Stats {
    /// The Prometheus metrics fed by the same hook.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Time since the process started serving.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Unix seconds when it started.
    pub fn started_at(&self) -> u64 {
        self.started_at
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        // Counters stay meaningful after a panic elsewhere: recover the guard.
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The hook: counts a refused submission now, or arranges for the job to be counted when
    /// its ticket is dropped. Returns `submitted` unchanged otherwise.
    pub fn track(
        self: &Arc<Self>,
        tier: &str,
        model: &str,
        submitted: Result<JobTicket, QueueError>,
    ) -> Result<JobTicket, QueueError> {
        let mut ticket = match submitted {
            Ok(ticket) => ticket,
            Err(e) => {
                self.record(tier, model, Outcome::Rejected, None, None);
                self.metrics.rejected(tier);
                return Err(e);
            }
        };
        let (stats, tier, model) = (Arc::clone(self), tier.to_owned(), model.to_owned());
        ticket.on_end(move |report: &JobReport| {
            let outcome = match report.end {
                JobEnd::Finished => Outcome::Completed,
                JobEnd::Failed(_) | JobEnd::Lost => Outcome::Failed,
                JobEnd::Abandoned => Outcome::Cancelled,
            };
            stats.record(&tier, &model, outcome, report.usage, report.queue_wait);
            stats.metrics.job_ended(&tier, &model, report);
        });
        Ok(ticket)
    }

    /// Counts one request.
    pub fn record(
        &self,
        tier: &str,
        model: &str,
        outcome: Outcome,
        usage: Option<Usage>,
        queue_wait: Option<Duration>,
    ) {
        let mut tally = self.lock();
        let entry = tally.tiers.entry(tier.to_owned()).or_default();
        let counter = match outcome {
            Outcome::Completed => &mut entry.outcomes.completed,
            Outcome::Failed => &mut entry.outcomes.failed,
            Outcome::Cancelled => &mut entry.outcomes.cancelled,
            Outcome::Rejected => &mut entry.outcomes.rejected,
        };
        *counter += 1;
        if let Some(wait) = queue_wait {
            if entry.waits.len() == WAIT_WINDOW {
                entry.waits.pop_front();
            }
            entry.waits.push_back(wait);
        }
        if let Some(usage) = usage {
            add(&mut entry.tokens, usage);
            let by_model = tally
                .models
                .entry((tier.to_owned(), model.to_owned()))
                .or_default();
            add(by_model, usage);
        }
    }

    /// The numbers now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let tally = self.lock();
        let tiers = tally
            .tiers
            .iter()
            .map(|(name, t)| {
                let stats = TierStats {
                    outcomes: t.outcomes,
                    tokens: t.tokens,
                    queue_wait: percentiles(t.waits.iter().copied().collect()),
                };
                (name.clone(), stats)
            })
            .collect();
        StatsSnapshot {
            tiers,
            models: tally.models.clone(),
        }
    }
}

fn add(tokens: &mut Tokens, usage: Usage) {
    tokens.requests += 1;
    tokens.prompt += usage.prompt_tokens;
    tokens.completion += usage.completion_tokens;
}

/// Nearest-rank percentiles: every reported value is one that was observed.
fn percentiles(mut waits: Vec<Duration>) -> Option<WaitPercentiles> {
    waits.sort_unstable();
    let max = *waits.last()?;
    // The value at 1-based rank ceil(p/100 * n); n >= 1 past the line above.
    let rank = |p: usize| waits[(p * waits.len()).div_ceil(100).max(1) - 1];
    Some(WaitPercentiles {
        samples: waits.len(),
        p50: rank(50),
        p95: rank(95),
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_are_nearest_rank_values() {
        let waits: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let p = percentiles(waits).unwrap();
        assert_eq!(
            (p.samples, p.p50, p.p95, p.max),
            (100, ms(50), ms(95), ms(100))
        );
        let one = percentiles(vec![ms(7)]).unwrap();
        assert_eq!((one.p50, one.p95, one.max), (ms(7), ms(7), ms(7)));
        assert_eq!(percentiles(Vec::new()), None);
    }

    #[test]
    fn outcomes_and_tokens_add_up_by_tier_and_model() {
        let stats = Stats::default();
        let usage = Some(Usage::new(10, 5));
        stats.record("pro", "a", Outcome::Completed, usage, Some(ms(3)));
        stats.record("pro", "b", Outcome::Completed, usage, Some(ms(1)));
        stats.record("pro", "a", Outcome::Failed, None, None);
        stats.record("free", "a", Outcome::Rejected, None, None);
        let snap = stats.snapshot();
        let pro = &snap.tiers["pro"];
        assert_eq!((pro.outcomes.completed, pro.outcomes.failed), (2, 1));
        assert_eq!((pro.tokens.prompt, pro.tokens.completion), (20, 10));
        assert_eq!(pro.queue_wait.unwrap().samples, 2);
        assert_eq!(snap.tiers["free"].outcomes.rejected, 1);
        assert_eq!(snap.tiers["free"].queue_wait, None);
        let a = snap.models[&("pro".to_owned(), "a".to_owned())];
        assert_eq!((a.requests, a.prompt, a.completion), (1, 10, 5));
    }

    #[test]
    fn only_the_most_recent_waits_are_kept() {
        let stats = Stats::default();
        for i in 0..(WAIT_WINDOW as u64 + 10) {
            stats.record("free", "m", Outcome::Cancelled, None, Some(ms(i)));
        }
        let wait = stats.snapshot().tiers["free"].queue_wait.unwrap();
        assert_eq!(wait.samples, WAIT_WINDOW);
        // The 10 oldest (0..10 ms) fell out of the window.
        assert_eq!(wait.p50, ms(10 + WAIT_WINDOW as u64 / 2 - 1));
        assert_eq!(stats.snapshot().tiers["free"].outcomes.cancelled, 1010);
    }
}
