//! Gateways share their queue state and clear orders over a fanout exchange, so that the admin
//! views, admission (tier limits, predicted waits), the rescue ration and a clear issued at any
//! gateway cover the whole system.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::queue::rabbitmq::locked;
use crate::queue::schedule::LEVELS;
use crate::queue::{QueueSnapshot, RunningJob, TierDepth};

/// How often a gateway publishes its state.
pub(super) const SHARE_EVERY: Duration = Duration::from_secs(1);

/// A peer not heard from for this long no longer counts.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// What gateways tell each other.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum PeerMessage {
    /// A gateway's queue depth and running jobs, and its book of dispatches.
    State(GatewayState),
    /// Fail the queued jobs of a tier (all tiers when `None`).
    Clear {
        gateway: String,
        tier: Option<String>,
    },
}

/// What a gateway shares every second. Fields added later default, so older gateways' states
/// still read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct GatewayState {
    pub gateway: String,
    pub tiers: Vec<TierDepth>,
    pub running: usize,
    /// The running jobs themselves.
    #[serde(default)]
    pub jobs: Vec<RunningJob>,
    /// Queued jobs per level (index = level).
    #[serde(default)]
    pub levels: Vec<usize>,
    /// Jobs granted since the gateway started.
    #[serde(default)]
    pub dispatched: u64,
    /// Rescue copies published since the gateway started.
    #[serde(default)]
    pub rescued: u64,
    /// Unix milliseconds at which its oldest starving, unrescued job was accepted.
    #[serde(default)]
    pub oldest_starving_ms: Option<u64>,
}

/// What one other gateway last reported.
#[derive(Debug)]
struct PeerState {
    state: GatewayState,
    at: Instant,
}

/// The latest state of every other gateway.
#[derive(Debug, Default)]
pub(super) struct Peers {
    states: Mutex<HashMap<String, PeerState>>,
}

impl Peers {
    /// Keeps a peer's state; returns the dispatches and rescues it made since its last report
    /// (none for a peer heard from for the first time: its past is not this ration's).
    pub(super) fn record(&self, state: GatewayState) -> (u64, u64) {
        let mut states = self.lock();
        let delta = states.get(&state.gateway).map_or((0, 0), |old| {
            (
                state.dispatched.saturating_sub(old.state.dispatched),
                state.rescued.saturating_sub(old.state.rescued),
            )
        });
        let peer = PeerState {
            state,
            at: Instant::now(),
        };
        states.insert(peer.state.gateway.clone(), peer);
        delta
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerState>> {
        locked(&self.states)
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
            .flat_map(|s| s.state.jobs.iter().cloned())
            .collect()
    }

    /// Jobs of `tier` queued at other gateways.
    pub(super) fn queued_in(&self, tier: &str) -> usize {
        self.fresh()
            .values()
            .flat_map(|s| &s.state.tiers)
            .filter(|t| t.tier == tier)
            .map(|t| t.queued)
            .sum()
    }

    /// Jobs queued at other gateways, per level.
    pub(super) fn levels(&self) -> [usize; LEVELS] {
        let mut levels = [0; LEVELS];
        for peer in self.fresh().values() {
            for (sum, n) in levels.iter_mut().zip(&peer.state.levels) {
                *sum += n;
            }
        }
        levels
    }

    /// When the oldest starving, unrescued job of any other gateway was accepted.
    pub(super) fn oldest_starving_ms(&self) -> Option<u64> {
        self.fresh()
            .values()
            .filter_map(|s| s.state.oldest_starving_ms)
            .min()
    }

    /// `local` plus what the other gateways reported.
    pub(super) fn merged(&self, local: QueueSnapshot) -> QueueSnapshot {
        let mut merged = local;
        for PeerState { state, .. } in self.fresh().values() {
            merged.running += state.running;
            for depth in &state.tiers {
                match merged.tiers.iter_mut().find(|t| t.tier == depth.tier) {
                    Some(t) => {
                        t.queued += depth.queued;
                        t.starving += depth.starving;
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
            starving: 0,
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
        peers.record(GatewayState {
            gateway: "b".into(),
            tiers: vec![depth("free", 2, 9.0), depth("pro", 1, 1.0)],
            running: 3,
            jobs: vec![job.clone()],
            levels: vec![0, 2, 1],
            ..GatewayState::default()
        });
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
        assert_eq!(peers.levels(), [0, 2, 1, 0, 0]);
    }

    #[test]
    fn a_peer_books_only_what_it_dispatched_since_its_last_report() {
        let peers = Peers::default();
        let state = |dispatched, rescued| GatewayState {
            gateway: "b".into(),
            dispatched,
            rescued,
            ..GatewayState::default()
        };
        assert_eq!(peers.record(state(100, 7)), (0, 0));
        assert_eq!(peers.record(state(130, 9)), (30, 2));
    }

    #[test]
    fn a_state_from_a_gateway_without_job_lists_still_reads() {
        let old = r#"{"kind":"state","gateway":"g","tiers":[],"running":2}"#;
        assert!(matches!(
            serde_json::from_str::<PeerMessage>(old).unwrap(),
            PeerMessage::State(GatewayState { running: 2, jobs, levels, .. }) if jobs.is_empty() && levels.is_empty()
        ));
    }
}
