//! Per-key limits of each tier: the request rate (GCRA, through `governor`), the number of
//! requests a key may have running or queued at once, and the bytes their bodies hold
//! ([`budget`]).
//!
//! `tower_governor` carries one quota per layer, while each tier here has its own quota and the
//! key is only known after authentication, so the keyed `governor` limiters sit behind the auth
//! middleware instead, one per tier.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::TierConfig;

pub mod budget;

use budget::{BodyBudget, BodyHold, OverBudget};

type KeyedLimiter =
    RateLimiter<String, DashMapStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The rate-limit state a response reports (OpenAI's `x-ratelimit-*-requests` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// Requests per minute of the tier.
    pub limit: u32,
    /// Requests the key may still make right now.
    pub remaining: u32,
    /// Time until the key's allowance is whole again.
    pub reset: Duration,
}

/// Why a request was refused by a per-key limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over the request rate; `retry_after` until the next request is allowed.
    Rate {
        /// The state to report.
        info: RateInfo,
        /// When a request would be allowed again.
        retry_after: Duration,
    },
    /// The key already has `limit` requests running or queued.
    Concurrency {
        /// The tier's limit.
        limit: u32,
    },
}

#[derive(Debug)]
struct TierLimits {
    rpm: u32,
    rate: KeyedLimiter,
    max_concurrent: u32,
}

/// The limiters of every tier.
#[derive(Debug)]
pub struct Limits {
    tiers: HashMap<String, TierLimits>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
    bodies: Arc<BodyBudget>,
}

/// One admitted request of a key; dropping it frees the place and its body's bytes.
#[derive(Debug)]
pub struct InFlight {
    key_id: String,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    body: Option<BodyHold>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(n) = counts.get_mut(&self.key_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key_id);
            }
        }
    }
}

fn lock(m: &Mutex<HashMap<String, u32>>) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Limits {
    /// Limiters for the configured tiers (their limits are validated positive).
    pub fn new(tiers_config: &[TierConfig]) -> Self {
        let tiers = tiers_config
            .iter()
            .map(|t| {
                let rpm = NonZeroU32::new(t.requests_per_minute).unwrap_or(NonZeroU32::MIN);
                // A full minute's allowance may be used at once; it refills evenly.
                let limiter = RateLimiter::dashmap(Quota::per_minute(rpm))
                    .with_middleware::<StateInformationMiddleware>();
                let limits = TierLimits {
                    rpm: rpm.get(),
                    rate: limiter,
                    max_concurrent: t.max_concurrent,
                };
                (t.name.clone(), limits)
            })
            .collect();
        let bodies = tiers_budget(tiers_config);
        Self {
            tiers,
            in_flight: Arc::default(),
            bodies: Arc::new(bodies),
        }
    }

    /// Holds `bytes` of a request's body for as long as `in_flight` lives, within the key's and
    /// the tier's budget.
    pub fn hold_body(
        &self,
        in_flight: &mut InFlight,
        tier: &str,
        bytes: u64,
    ) -> Result<(), OverBudget> {
        let hold = self.bodies.hold(tier, &in_flight.key_id, bytes)?;
        in_flight.body = Some(hold);
        Ok(())
    }

    /// Counts one request of `key_id` against its tier's rate.
    pub fn check_rate(&self, tier: &str, key_id: &str) -> Result<Option<RateInfo>, Refusal> {
        let Some(t) = self.tiers.get(tier) else {
            return Ok(None);
        };
        let interval = Duration::from_secs(60) / t.rpm;
        match t.rate.check_key(&key_id.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(Some(RateInfo {
                    limit: t.rpm,
                    remaining,
                    reset: interval * t.rpm.saturating_sub(remaining),
                }))
            }
            Err(not_until) => Err(Refusal::Rate {
                info: RateInfo {
                    limit: t.rpm,
                    remaining: 0,
                    reset: interval * t.rpm,
                },
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }),
        }
    }

    /// Admits one more running-or-queued request of `key_id`, up to its tier's limit.
    pub fn acquire(&self, tier: &str, key_id: &str) -> Result<InFlight, Refusal> {
        let limit = self.tiers.get(tier).map_or(u32::MAX, |t| t.max_concurrent);
        let mut counts = lock(&self.in_flight);
        let n = counts.entry(key_id.to_owned()).or_default();
        if *n >= limit {
            return Err(Refusal::Concurrency { limit });
        }
        *n += 1;
        Ok(InFlight {
            key_id: key_id.to_owned(),
            counts: Arc::clone(&self.in_flight),
            body: None,
        })
    }

    /// Whether `key_id` may have one more request running or queued; `Err(limit)` when not.
    /// A check only: [`Limits::acquire`] takes the place.
    pub fn has_room(&self, tier: &str, key_id: &str) -> Result<(), u32> {
        let limit = self.tiers.get(tier).map_or(u32::MAX, |t| t.max_concurrent);
        let running = lock(&self.in_flight).get(key_id).copied().unwrap_or(0);
        if running >= limit { Err(limit) } else { Ok(()) }
    }

    /// Forgets keys idle long enough that their allowance is whole again (bounds memory).
    pub fn retain_recent(&self) {
        for t in self.tiers.values() {
            t.rate.retain_recent();
            t.rate.shrink_to_fit();
        }
    }
}

/// The body budgets of the configured tiers.
fn tiers_budget(tiers: &[TierConfig]) -> BodyBudget {
    BodyBudget::new(tiers.iter().map(|t| {
        (
            t.name.clone(),
            t.max_key_bytes.unwrap_or(budget::DEFAULT_KEY_BYTES),
            t.max_queued_bytes.unwrap_or(budget::DEFAULT_TIER_BYTES),
        )
    }))
}

/// A duration the way OpenAI's reset headers spell it: `20ms`, `1s`, `6m0s`.
pub fn openai_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        return format!("{}s", trim(secs));
    }
    let minutes = d.as_secs() / 60;
    format!("{minutes}m{}s", trim(secs - (minutes * 60) as f64))
}

fn trim(secs: f64) -> String {
    let text = format!("{secs:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(rpm: u32, max_concurrent: u32) -> TierConfig {
        TierConfig {
            name: "t".into(),
            priority: 1,
            requests_per_minute: rpm,
            max_concurrent,
            max_queued: 10,
            max_wait_secs: 10,
            starvation_secs: None,
            allowed_options: None,
            max_num_ctx: None,
            allow_keep_alive: false,
            max_key_bytes: None,
            max_queued_bytes: None,
        }
    }

    #[test]
    fn a_key_gets_its_minute_allowance_then_waits_and_other_keys_are_unaffected() {
        let limits = Limits::new(&[tier(3, 10)]);
        for expected in [2, 1, 0] {
            let info = limits.check_rate("t", "a").unwrap().unwrap();
            assert_eq!((info.limit, info.remaining), (3, expected));
        }
        match limits.check_rate("t", "a").unwrap_err() {
            Refusal::Rate { retry_after, info } => {
                assert!(
                    retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20)
                );
                assert_eq!(info.remaining, 0);
            }
            other @ Refusal::Concurrency { .. } => panic!("{other:?}"),
        }
        assert!(limits.check_rate("t", "b").is_ok());
        assert_eq!(limits.check_rate("unknown", "a"), Ok(None));
    }

    #[test]
    fn concurrency_is_counted_per_key_and_freed_on_drop() {
        let limits = Limits::new(&[tier(100, 2)]);
        let a1 = limits.acquire("t", "a").unwrap();
        let _a2 = limits.acquire("t", "a").unwrap();
        assert_eq!(
            limits.acquire("t", "a").unwrap_err(),
            Refusal::Concurrency { limit: 2 }
        );
        assert!(limits.acquire("t", "b").is_ok());
        drop(a1);
        assert!(limits.acquire("t", "a").is_ok());
    }

    #[test]
    fn durations_are_written_like_openai_headers() {
        assert_eq!(openai_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(openai_duration(Duration::from_secs(1)), "1s");
        assert_eq!(openai_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(openai_duration(Duration::from_secs(360)), "6m0s");
    }
}
