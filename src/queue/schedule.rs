//! The scheduling rule, as pure arithmetic shared by every backend, so the embedded queue and
//! the RabbitMQ gateways cannot disagree:
//!
//! - a job's **level** is its tier's priority, one lower for flex work; dispatch takes the
//!   highest level first, then the oldest job. Waiting does not raise a level.
//! - **rescue**: a job queued longer than its tier's starvation time is *starving*; the oldest
//!   starving job may jump to [`RESCUE_LEVEL`], above every tier, but only as often as the
//!   [`RescueRation`] allows: at most `rescue_share` of the dispatches, spaced evenly.
//! - **prediction**: a job's expected wait from its place in that order and the recent
//!   dispatch rate ([`DispatchRate`]), used for early shedding and keep-alive ETAs.

use std::time::{Duration, Instant};

use crate::openai::ServiceTier;

/// The level only a rescued job reaches: above every tier.
pub const RESCUE_LEVEL: u8 = 4;

/// Number of distinct levels (0 = a priority-1 tier's flex work, 4 = rescued).
pub const LEVELS: usize = RESCUE_LEVEL as usize + 1;

/// The level a job starts at: its tier's base priority, one lower for flex work.
pub fn base_level(tier_priority: u8, service_tier: ServiceTier) -> u8 {
    let level = tier_priority.min(RESCUE_LEVEL - 1);
    match service_tier {
        ServiceTier::Standard => level,
        ServiceTier::Flex => level.saturating_sub(1),
    }
}

/// Rations rescues to at most `share` of the dispatches, spaced evenly: a rescue is allowed
/// once `ceil(1 / share)` dispatches have passed since the last one (counting the rescue
/// itself), and at once on a queue that has not rescued yet. So under a steady flood at most
/// every tenth dispatch (at the default 0.1) is a rescue, and a higher tier waits at most one
/// service time per rescue ahead of it, however long the lower tier's backlog.
#[derive(Debug, Clone)]
pub struct RescueRation {
    /// Dispatches from one rescue to the next, at least.
    spacing: u64,
    /// Dispatches since the last rescue, the rescue included.
    since_rescue: u64,
}

impl RescueRation {
    /// A ration of `share` (0 < share ≤ 0.5, checked by the configuration).
    pub fn new(share: f64) -> Self {
        // The configuration bounds share to (0, 0.5], so the spacing is 2 or more and fits.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let spacing = ((1.0 / share) - 1e-9).ceil().max(2.0) as u64;
        Self {
            spacing,
            since_rescue: spacing,
        }
    }

    /// Whether the next dispatch may be a rescue.
    pub fn allows(&self) -> bool {
        self.since_rescue + 1 >= self.spacing
    }

    /// Books `dispatches` dispatches, `rescues` of which were rescues. Where the order within
    /// a batch is unknown (a peer's report), its rescues count as the latest dispatches.
    pub fn record(&mut self, dispatches: u64, rescues: u64) {
        self.since_rescue = if rescues > 0 {
            0
        } else {
            self.since_rescue.saturating_add(dispatches)
        };
    }
}

/// Seconds of dispatches the rate looks back on.
const RATE_WINDOW_SECS: usize = 60;

/// Dispatches (and rescues among them) per second over the last minute, in one-second buckets:
/// constant memory at any rate, and long enough to see a one-slot Ollama taking a minute per
/// answer.
#[derive(Debug, Clone)]
pub struct DispatchRate {
    origin: Instant,
    /// `(second since origin, dispatches, rescues)`, indexed by second modulo the window.
    buckets: [(u64, u64, u64); RATE_WINDOW_SECS],
}

impl Default for DispatchRate {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            buckets: [(u64::MAX, 0, 0); RATE_WINDOW_SECS],
        }
    }
}

impl DispatchRate {
    /// Books `dispatches` dispatches, `rescues` of them rescues, at `now`.
    pub fn record(&mut self, now: Instant, dispatches: u64, rescues: u64) {
        let second = now.saturating_duration_since(self.origin).as_secs();
        let bucket = &mut self.buckets[Self::index(second)];
        if bucket.0 != second {
            *bucket = (second, 0, 0);
        }
        bucket.1 += dispatches;
        bucket.2 += rescues;
    }

    /// `(dispatches, rescues, first second)` within the window ending at `now`.
    fn window(&self, now: Instant) -> (u64, u64, Option<u64>) {
        let second = now.saturating_duration_since(self.origin).as_secs();
        let oldest = second.saturating_sub(RATE_WINDOW_SECS as u64 - 1);
        let live = self
            .buckets
            .iter()
            .filter(|b| b.0 != u64::MAX && b.0 >= oldest && b.0 <= second && b.1 > 0);
        live.fold((0, 0, None), |(d, r, first), b| {
            (
                d + b.1,
                r + b.2,
                Some(first.map_or(b.0, |f: u64| f.min(b.0))),
            )
        })
    }

    /// Dispatches per second lately; `None` before the first one (a cold system).
    pub fn per_sec(&self, now: Instant) -> Option<f64> {
        let (dispatches, _, first) = self.window(now);
        let first = first?;
        let second = now.saturating_duration_since(self.origin).as_secs_f64();
        // At least one second, so a burst right after a quiet spell is not read as a torrent.
        #[allow(clippy::cast_precision_loss)]
        let span = (second - first as f64).clamp(1.0, RATE_WINDOW_SECS as f64);
        #[allow(clippy::cast_precision_loss)]
        Some(dispatches as f64 / span)
    }

    /// Share of the last minute's dispatches that were rescues (0 when there were none).
    pub fn rescue_share(&self, now: Instant) -> f64 {
        let (dispatches, rescues, _) = self.window(now);
        #[allow(clippy::cast_precision_loss)]
        if dispatches == 0 {
            0.0
        } else {
            rescues as f64 / dispatches as f64
        }
    }

    fn index(second: u64) -> usize {
        usize::try_from(second % RATE_WINDOW_SECS as u64).unwrap_or(0)
    }
}

/// Where a job stands, as the prediction sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// Queued jobs that the normal order dispatches before it.
    pub ahead: usize,
    /// Older queued jobs at its level or below: they starve first, so they are rescued first.
    pub older_rescues: usize,
    /// How long until the job itself starves (zero once it does).
    pub until_starving: Duration,
}

/// The job's expected wait at `per_sec` dispatches a second, with `share` of them rescues: the
/// sooner of its turn in the normal order (the dispatches of the jobs ahead, then its own) and
/// its turn among rescues. `None` on a cold system.
pub fn predicted_wait(standing: Standing, per_sec: Option<f64>, share: f64) -> Option<Duration> {
    let rate = per_sec.filter(|r| *r > 0.0)?;
    #[allow(clippy::cast_precision_loss)]
    let normal = (standing.ahead + 1) as f64 / rate;
    #[allow(clippy::cast_precision_loss)]
    let rescued = standing.until_starving.as_secs_f64()
        + (standing.older_rescues + 1) as f64 / (share * rate);
    Some(Duration::from_secs_f64(normal.min(rescued).min(1e9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_lowers_one_level_and_never_below_zero() {
        assert_eq!(base_level(2, ServiceTier::Flex), 1);
        assert_eq!(base_level(1, ServiceTier::Flex), 0);
        assert_eq!(base_level(0, ServiceTier::Flex), 0);
        assert_eq!(base_level(3, ServiceTier::Standard), 3);
    }

    #[test]
    fn no_tier_reaches_the_rescue_level_by_itself() {
        assert_eq!(base_level(9, ServiceTier::Standard), RESCUE_LEVEL - 1);
    }

    /// Which of `n` dispatches are rescues when a starving job always waits.
    fn rescues_under_flood(share: f64, n: usize) -> Vec<usize> {
        let mut ration = RescueRation::new(share);
        let mut rescued = Vec::new();
        for i in 0..n {
            let rescue = ration.allows();
            ration.record(1, u64::from(rescue));
            if rescue {
                rescued.push(i);
            }
        }
        rescued
    }

    #[test]
    fn a_full_ration_rescues_at_once_then_every_tenth_dispatch() {
        assert_eq!(rescues_under_flood(0.1, 35), [0, 10, 20, 30]);
    }

    #[test]
    fn rescues_are_spaced_by_the_share_rounded_to_whole_dispatches() {
        for (share, spacing) in [
            (0.01, 100),
            (0.1, 10),
            (0.25, 4),
            (0.3, 4),
            (0.333, 4),
            (0.5, 2),
        ] {
            let rescued = rescues_under_flood(share, 1000);
            assert_eq!(rescued.len(), 1000_usize.div_ceil(spacing), "share {share}");
            assert!(
                rescued.windows(2).all(|w| w[1] - w[0] == spacing),
                "share {share}"
            );
        }
    }

    #[test]
    fn no_rescues_are_saved_up_over_a_quiet_spell() {
        let mut ration = RescueRation::new(0.1);
        ration.record(10_000, 0);
        assert!(ration.allows());
        ration.record(1, 1);
        assert!(!ration.allows(), "a second rescue right away");
        ration.record(8, 0);
        assert!(!ration.allows(), "a second rescue within ten dispatches");
        ration.record(1, 0);
        assert!(ration.allows());
    }

    #[test]
    fn a_batch_with_rescues_counts_them_as_the_latest_dispatches() {
        let mut ration = RescueRation::new(0.1);
        ration.record(30, 1);
        assert!(!ration.allows());
        ration.record(9, 0);
        assert!(ration.allows());
    }

    #[test]
    fn the_rate_is_dispatches_over_the_span_they_cover() {
        let mut rate = DispatchRate::default();
        let t0 = rate.origin;
        assert_eq!(rate.per_sec(t0), None, "cold");
        for s in 0..10 {
            rate.record(t0 + Duration::from_secs(s), 5, u64::from(s % 5 == 0));
        }
        let now = t0 + Duration::from_secs(10);
        let per_sec = rate.per_sec(now).unwrap();
        assert!((per_sec - 5.0).abs() < 0.01, "{per_sec}");
        assert!((rate.rescue_share(now) - 2.0 / 50.0).abs() < 1e-9);
        // A minute later the window has moved past every bucket.
        assert_eq!(rate.per_sec(now + Duration::from_secs(61)), None);
    }

    #[test]
    fn a_burst_counts_over_at_least_one_second() {
        let mut rate = DispatchRate::default();
        let t0 = rate.origin;
        rate.record(t0, 100, 0);
        assert_eq!(rate.per_sec(t0 + Duration::from_millis(10)), Some(100.0));
    }

    #[test]
    fn a_cold_system_predicts_nothing() {
        let standing = Standing {
            ahead: 1000,
            older_rescues: 0,
            until_starving: Duration::ZERO,
        };
        assert_eq!(predicted_wait(standing, None, 0.1), None);
        assert_eq!(predicted_wait(standing, Some(0.0), 0.1), None);
    }

    #[test]
    fn the_wait_is_the_sooner_of_the_normal_turn_and_the_rescue_turn() {
        // 99 ahead at 10/s: 10 s normally; starving in 2 s with 3 older rescues at 1/s: 6 s.
        let standing = Standing {
            ahead: 99,
            older_rescues: 3,
            until_starving: Duration::from_secs(2),
        };
        assert_eq!(
            predicted_wait(standing, Some(10.0), 0.1),
            Some(Duration::from_secs(6))
        );
        let near = Standing {
            ahead: 4,
            ..standing
        };
        assert_eq!(
            predicted_wait(near, Some(10.0), 0.1),
            Some(Duration::from_millis(500))
        );
    }
}
