//! Priority arithmetic shared by every backend: base levels, the flex discount and aging.

use std::time::Duration;

use crate::openai::ServiceTier;

/// The highest level; only aging reaches it, so a long wait beats any fresh job.
pub const TOP_LEVEL: u8 = 4;

/// Number of distinct levels (0 = a free-tier job volunteered as flex, 4 = top).
pub const LEVELS: usize = TOP_LEVEL as usize + 1;

/// The level a job starts at: its tier's base priority, one lower for flex work.
pub fn base_level(tier_priority: u8, service_tier: ServiceTier) -> u8 {
    let level = tier_priority.min(TOP_LEVEL);
    match service_tier {
        ServiceTier::Standard => level,
        ServiceTier::Flex => level.saturating_sub(1),
    }
}

/// `min(top, base + floor(waited / interval))`: one level per full aging interval.
pub fn effective_level(base: u8, waited: Duration, interval: Duration) -> u8 {
    if interval.is_zero() {
        return TOP_LEVEL;
    }
    let steps = waited.as_nanos() / interval.as_nanos();
    let steps = u8::try_from(steps).unwrap_or(u8::MAX);
    base.saturating_add(steps).min(TOP_LEVEL)
}

/// How long a job at `base` waits until it reaches `level` (zero when it is already there).
pub fn time_to_reach(base: u8, level: u8, interval: Duration) -> Duration {
    interval * u32::from(level.saturating_sub(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Duration = Duration::from_secs(10);

    #[test]
    fn flex_lowers_one_level_and_never_below_zero() {
        assert_eq!(base_level(2, ServiceTier::Flex), 1);
        assert_eq!(base_level(1, ServiceTier::Flex), 0);
        assert_eq!(base_level(0, ServiceTier::Flex), 0);
        assert_eq!(base_level(3, ServiceTier::Standard), 3);
    }

    #[test]
    fn a_job_rises_one_level_per_full_interval() {
        assert_eq!(effective_level(1, Duration::from_secs(9), TEN), 1);
        assert_eq!(effective_level(1, TEN, TEN), 2);
        assert_eq!(effective_level(1, Duration::from_secs(29), TEN), 3);
        assert_eq!(effective_level(1, Duration::from_secs(30), TEN), 4);
    }

    #[test]
    fn aging_stops_at_the_top_level() {
        assert_eq!(
            effective_level(1, Duration::from_secs(100_000), TEN),
            TOP_LEVEL
        );
        assert_eq!(
            effective_level(3, Duration::from_secs(3600), TEN),
            TOP_LEVEL
        );
    }

    #[test]
    fn time_to_reach_counts_whole_intervals() {
        assert_eq!(time_to_reach(1, 4, TEN), Duration::from_secs(30));
        assert_eq!(time_to_reach(3, 2, TEN), Duration::ZERO);
    }
}
