//! What a queue backend is told at start: each tier's limits and starvation time, the share of
//! dispatches rescues may take, and how long a client may stall its stream.

use std::collections::HashMap;
use std::time::Duration;

/// The per-tier part of the scheduling rule.
#[derive(Debug, Clone, PartialEq)]
pub struct TierRule {
    /// Base priority (1..=3), for counting which queued jobs rank above a level.
    pub priority: u8,
    /// A job queued this long is starving and may be rescued.
    pub starvation: Duration,
    /// Queued jobs of this tier across the system; `None` for no limit.
    pub max_queued: Option<usize>,
}

/// Everything a backend needs to schedule, admit and pace jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuePolicy {
    /// Rules by tier name.
    pub tiers: HashMap<String, TierRule>,
    /// Starvation time of a tier the table does not name.
    pub default_starvation: Duration,
    /// Most of the recent dispatches that may go to rescued jobs, in (0, 0.5].
    pub rescue_share: f64,
    /// How long a worker waits for a client whose event buffer is full before dropping it.
    pub slow_client: Duration,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        Self {
            tiers: HashMap::new(),
            default_starvation: Duration::from_secs(30),
            rescue_share: 0.1,
            slow_client: Duration::from_secs(30),
        }
    }
}

impl QueuePolicy {
    /// How long a job of `tier` waits before it is starving.
    pub fn starvation(&self, tier: &str) -> Duration {
        self.tiers
            .get(tier)
            .map_or(self.default_starvation, |t| t.starvation)
    }

    /// The queued-jobs limit of `tier`, if any.
    pub fn max_queued(&self, tier: &str) -> Option<usize> {
        self.tiers.get(tier).and_then(|t| t.max_queued)
    }

    /// The priority of `tier` (tiers the table does not name rank lowest).
    pub fn priority(&self, tier: &str) -> u8 {
        self.tiers.get(tier).map_or(0, |t| t.priority)
    }
}
