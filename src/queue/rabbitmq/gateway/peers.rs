//! Gateways share their queue state and clear orders over a fanout exchange, so that the admin
//! views, the per-tier admission limit and a clear issued at any gateway cover the whole system.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::queue::{QueueSnapshot, TierDepth};

/// How often a gateway publishes its state.
pub(super) const SHARE_EVERY: Duration = Duration::from_secs(1);

/// A peer not heard from for this long no longer counts.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// What gateways tell each other.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum PeerMessage {
    /// A gateway's queue depth per tier and its running jobs.
    State {
        gateway: String,
        tiers: Vec<TierDepth>,
        running: usize,
    },
    /// Fail the queued jobs of a tier (all tiers when `None`).
    Clear {
        gateway: String,
        tier: Option<String>,
    },
}

/// The latest state of every other gateway.
#[derive(Debug, Default)]
pub(super) struct Peers {
    states: Mutex<HashMap<String, (QueueSnapshot, Instant)>>,
}

impl Peers {
    pub(super) fn record(&self, gateway: String, snapshot: QueueSnapshot) {
        self.lock().insert(gateway, (snapshot, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (QueueSnapshot, Instant)>> {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fresh(&self) -> Vec<QueueSnapshot> {
        let mut states = self.lock();
        states.retain(|_, (_, at)| at.elapsed() < STALE_AFTER);
        states.values().map(|(s, _)| s.clone()).collect()
    }

    /// Jobs of `tier` queued at other gateways.
    pub(super) fn queued_in(&self, tier: &str) -> usize {
        self.fresh()
            .iter()
            .flat_map(|s| &s.tiers)
            .filter(|t| t.tier == tier)
            .map(|t| t.queued)
            .sum()
    }

    /// `local` plus what the other gateways reported.
    pub(super) fn merged(&self, local: QueueSnapshot) -> QueueSnapshot {
        let mut merged = local;
        for peer in self.fresh() {
            merged.running += peer.running;
            for depth in peer.tiers {
                match merged.tiers.iter_mut().find(|t| t.tier == depth.tier) {
                    Some(t) => {
                        t.queued += depth.queued;
                        t.oldest_wait_secs = t.oldest_wait_secs.max(depth.oldest_wait_secs);
                    }
                    None => merged.tiers.push(depth),
                }
            }
        }
        merged.tiers.sort_by(|a, b| a.tier.cmp(&b.tier));
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(tier: &str, queued: usize, oldest: f64) -> TierDepth {
        TierDepth {
            tier: tier.into(),
            queued,
            oldest_wait_secs: oldest,
        }
    }

    #[test]
    fn peers_add_their_depths_and_running_jobs_to_the_local_view() {
        let peers = Peers::default();
        peers.record(
            "b".into(),
            QueueSnapshot {
                tiers: vec![depth("free", 2, 9.0), depth("pro", 1, 1.0)],
                running: 3,
            },
        );
        let merged = peers.merged(QueueSnapshot {
            tiers: vec![depth("free", 1, 4.0)],
            running: 1,
        });
        assert_eq!(merged.running, 4);
        assert_eq!(
            merged.tiers,
            vec![depth("free", 3, 9.0), depth("pro", 1, 1.0)]
        );
        assert_eq!(peers.queued_in("free"), 2);
    }
}
