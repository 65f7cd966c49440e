//! Gateways share their queue state and clear orders over a fanout exchange, so that the admin
//! views, the per-tier admission limit and a clear issued at any gateway cover the whole system.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::queue::{QueueSnapshot, RunningJob, TierDepth};

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
        /// The running jobs themselves (absent from gateways that predate it).
        #[serde(default)]
        jobs: Vec<RunningJob>,
    },
    /// Fail the queued jobs of a tier (all tiers when `None`).
    Clear {
        gateway: String,
        tier: Option<String>,
    },
}

/// What one other gateway last reported.
#[derive(Debug)]
struct PeerState {
    snapshot: QueueSnapshot,
    jobs: Vec<RunningJob>,
    at: Instant,
}

/// The latest state of every other gateway.
#[derive(Debug, Default)]
pub(super) struct Peers {
    states: Mutex<HashMap<String, PeerState>>,
}

impl Peers {
    pub(super) fn record(&self, gateway: String, snapshot: QueueSnapshot, jobs: Vec<RunningJob>) {
        let state = PeerState {
            snapshot,
            jobs,
            at: Instant::now(),
        };
        self.lock().insert(gateway, state);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerState>> {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The states still fresh, stale ones dropped. Callers read them in place: admission asks
    /// on every request, and copying the peers' job lists there would cost for nothing.
    fn fresh(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerState>> {
        let mut states = self.lock();
        states.retain(|_, state| state.at.elapsed() < STALE_AFTER);
        states
    }

    /// The jobs the other gateways' clients have running.
    pub(super) fn running_jobs(&self) -> Vec<RunningJob> {
        self.fresh()
            .values()
            .flat_map(|s| s.jobs.iter().cloned())
            .collect()
    }

    /// Jobs of `tier` queued at other gateways.
    pub(super) fn queued_in(&self, tier: &str) -> usize {
        self.fresh()
            .values()
            .flat_map(|s| &s.snapshot.tiers)
            .filter(|t| t.tier == tier)
            .map(|t| t.queued)
            .sum()
    }

    /// `local` plus what the other gateways reported.
    pub(super) fn merged(&self, local: QueueSnapshot) -> QueueSnapshot {
        let mut merged = local;
        for PeerState { snapshot, .. } in self.fresh().values() {
            merged.running += snapshot.running;
            for depth in &snapshot.tiers {
                match merged.tiers.iter_mut().find(|t| t.tier == depth.tier) {
                    Some(t) => {
                        t.queued += depth.queued;
                        t.oldest_wait_secs = t.oldest_wait_secs.max(depth.oldest_wait_secs);
                    }
                    None => merged.tiers.push(depth.clone()),
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
        let job = RunningJob {
            job_id: "job_b1".into(),
            tier: "pro".into(),
            key_id: "key_b".into(),
            model: "llama3.2:latest".into(),
            worker: "w1".into(),
            started_at: 1,
            tokens: 7,
        };
        peers.record(
            "b".into(),
            QueueSnapshot {
                tiers: vec![depth("free", 2, 9.0), depth("pro", 1, 1.0)],
                running: 3,
            },
            vec![job.clone()],
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
        assert_eq!(peers.running_jobs(), vec![job]);
    }

    #[test]
    fn a_state_from_a_gateway_without_job_lists_still_reads() {
        let old = r#"{"kind":"state","gateway":"g","tiers":[],"running":2}"#;
        assert!(matches!(
            serde_json::from_str::<PeerMessage>(old).unwrap(),
            PeerMessage::State { running: 2, jobs, .. } if jobs.is_empty()
        ));
    }
}
