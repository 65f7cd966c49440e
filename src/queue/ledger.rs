//! The book a backend keeps of its dispatches and rescues: the rescue ration, the dispatch
//! rate and the rescues per tier. The embedded queue books its own dispatches; a RabbitMQ
//! gateway books its grants and rescues and, from its peers' shared state, theirs, so the
//! ration holds system-wide.

use std::collections::BTreeMap;
use std::time::Instant;

use super::SchedulingView;
use super::schedule::{DispatchRate, RescueRation};

/// Dispatches and rescues, with the ration they leave.
#[derive(Debug, Clone)]
pub struct DispatchLedger {
    share: f64,
    ration: RescueRation,
    rate: DispatchRate,
    /// This process's rescues by tier, since start.
    rescues: BTreeMap<String, u64>,
    /// This process's dispatches and rescues since start, for its peers.
    totals: (u64, u64),
}

impl DispatchLedger {
    /// An empty book with rescues rationed to `share` of the dispatches.
    pub fn new(share: f64) -> Self {
        Self {
            share,
            ration: RescueRation::new(share),
            rate: DispatchRate::default(),
            rescues: BTreeMap::new(),
            totals: (0, 0),
        }
    }

    /// The configured share.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// Whether a starving job may be rescued now.
    pub fn may_rescue(&self) -> bool {
        self.ration.allows()
    }

    /// Books one dispatch of this process.
    pub fn dispatched(&mut self, now: Instant) {
        self.ration.record(1, 0);
        self.rate.record(now, 1, 0);
        self.totals.0 += 1;
    }

    /// Books one rescue of a `tier` job by this process, as a dispatch of its own: a RabbitMQ
    /// gateway books it when it publishes the rescue copy, and not again at its grant.
    pub fn rescued(&mut self, now: Instant, tier: &str) {
        self.ration.record(1, 1);
        self.rate.record(now, 1, 1);
        self.totals.0 += 1;
        self.totals.1 += 1;
        *self.rescues.entry(tier.to_owned()).or_default() += 1;
    }

    /// Books what other processes dispatched and rescued since they last reported.
    pub fn observed(&mut self, now: Instant, dispatches: u64, rescues: u64) {
        self.ration.record(dispatches, rescues);
        self.rate.record(now, dispatches, rescues);
    }

    /// Dispatches per second lately, system-wide as far as this book knows.
    pub fn per_sec(&self, now: Instant) -> Option<f64> {
        self.rate.per_sec(now)
    }

    /// This process's dispatches and rescues since start.
    pub fn totals(&self) -> (u64, u64) {
        self.totals
    }

    /// The book as admins see it.
    pub fn view(&self, now: Instant) -> SchedulingView {
        SchedulingView {
            rescue_share: self.share,
            recent_rescue_share: self.rate.rescue_share(now),
            throughput_per_sec: self.rate.per_sec(now),
            rescues: self.rescues.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescue_spends_the_ration_and_counts_for_its_tier() {
        let now = Instant::now();
        let mut book = DispatchLedger::new(0.1);
        assert!(book.may_rescue());
        book.rescued(now, "free");
        assert!(!book.may_rescue());
        for _ in 0..9 {
            book.dispatched(now);
        }
        assert!(book.may_rescue());
        assert_eq!(book.totals(), (10, 1));
        let view = book.view(now);
        assert_eq!(view.rescues["free"], 1);
        assert!((view.recent_rescue_share - 0.1).abs() < 1e-9);
    }

    #[test]
    fn peers_rescues_spend_this_ration_too() {
        let now = Instant::now();
        let mut book = DispatchLedger::new(0.1);
        book.observed(now, 5, 1);
        assert!(!book.may_rescue());
        assert_eq!(book.totals(), (0, 0), "peers' work is not this process's");
    }
}
