//! The memory budget of queued request bodies: a job's body waits in memory until a worker
//! takes it, so the bytes a key, and a whole tier, hold at once are bounded. Without it a
//! tier's queue limit times the largest body allows tens of GiB of queued prompts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes a key may hold in bodies of its running and queued requests, unless its tier says.
pub const DEFAULT_KEY_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes a tier may hold in bodies of its running and queued requests, unless it says.
pub const DEFAULT_TIER_BYTES: u64 = 1024 * 1024 * 1024;

/// Budgets by tier, and what is held now.
#[derive(Debug, Default)]
pub struct BodyBudget {
    /// `(per key, per tier)` by tier.
    limits: HashMap<String, (u64, u64)>,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    keys: HashMap<String, u64>,
    tiers: HashMap<String, u64>,
}

/// What was over budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// The key's own budget.
    Key(u64),
    /// The tier's budget, shared by its keys.
    Tier(u64),
}

/// Bytes held for one request; dropping it gives them back.
#[derive(Debug)]
pub struct BodyHold {
    budget: Arc<BodyBudget>,
    key_id: String,
    tier: String,
    bytes: u64,
}

impl BodyBudget {
    /// Budgets of `(tier, per key, per tier)`.
    pub fn new(limits: impl IntoIterator<Item = (String, u64, u64)>) -> Self {
        Self {
            limits: limits
                .into_iter()
                .map(|(t, k, all)| (t, (k, all)))
                .collect(),
            held: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `bytes` for a request of `key_id` in `tier`, or says which budget it would pass.
    pub fn hold(
        self: &Arc<Self>,
        tier: &str,
        key_id: &str,
        bytes: u64,
    ) -> Result<BodyHold, OverBudget> {
        let (per_key, per_tier) = self
            .limits
            .get(tier)
            .copied()
            .unwrap_or((DEFAULT_KEY_BYTES, DEFAULT_TIER_BYTES));
        let mut held = self.lock();
        let key_now = held.keys.get(key_id).copied().unwrap_or(0);
        let tier_now = held.tiers.get(tier).copied().unwrap_or(0);
        // A single body within the key's budget is always admitted once nothing else is held,
        // so one large request is never refused for its size alone (the body limit does that).
        if key_now > 0 && key_now + bytes > per_key {
            return Err(OverBudget::Key(per_key));
        }
        if tier_now > 0 && tier_now + bytes > per_tier {
            return Err(OverBudget::Tier(per_tier));
        }
        *held.keys.entry(key_id.to_owned()).or_default() += bytes;
        *held.tiers.entry(tier.to_owned()).or_default() += bytes;
        Ok(BodyHold {
            budget: Arc::clone(self),
            key_id: key_id.to_owned(),
            tier: tier.to_owned(),
            bytes,
        })
    }
}

impl Drop for BodyHold {
    fn drop(&mut self) {
        let mut held = self.budget.lock();
        let Held { keys, tiers } = &mut *held;
        for (map, name) in [(keys, &self.key_id), (tiers, &self.tier)] {
            if let Some(n) = map.get_mut(name) {
                *n = n.saturating_sub(self.bytes);
                if *n == 0 {
                    map.remove(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_a_tier_hold_at_most_their_budget_and_get_it_back() {
        let budget = Arc::new(BodyBudget::new([("free".to_owned(), 100, 150)]));
        let a = budget.hold("free", "k1", 60).unwrap();
        assert_eq!(
            budget.hold("free", "k1", 50).unwrap_err(),
            OverBudget::Key(100)
        );
        let b = budget.hold("free", "k2", 80).unwrap();
        assert_eq!(
            budget.hold("free", "k3", 20).unwrap_err(),
            OverBudget::Tier(150)
        );
        drop((a, b));
        drop(budget.hold("free", "k1", 90).unwrap());
        // One body larger than the budget alone is admitted: the body limit bounds it.
        assert!(budget.hold("free", "k9", 500).is_ok());
    }
}
