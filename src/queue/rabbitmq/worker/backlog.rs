//! What a worker believes its job queues hold, so a free slot pulls from the highest level
//! that has work without asking every queue each time (an empty `basic.get` on a quorum queue
//! is a replicated command).
//!
//! Beliefs come from three sources: the bell (a job was queued there), each pull (how many
//! remain behind the message taken, or that the queue was empty) and a periodic count of every
//! queue, which repairs whatever a lost bell or another worker's pull left wrong. Levels are
//! strict: a slot always tries the highest level believed non-empty first; models at the same
//! level take turns.

use std::collections::BTreeMap;

use crate::queue::schedule::LEVELS;

/// Ready jobs believed to wait, per model and level.
#[derive(Debug, Default)]
pub struct Backlog {
    counts: BTreeMap<String, [u32; LEVELS]>,
    /// Which model goes first among those at the same level.
    turn: usize,
}

impl Backlog {
    /// Follows the models the worker serves; a new model's queues are unknown, so each gets
    /// one try.
    pub fn set_models(&mut self, models: &[String]) {
        self.counts.retain(|m, _| models.contains(m));
        for model in models {
            self.counts.entry(model.clone()).or_insert([1; LEVELS]);
        }
    }

    /// A job was queued in `model`'s queue of `level`.
    pub fn rang(&mut self, model: &str, level: u8) {
        if let Some(slot) = self.slot(model, level) {
            *slot = slot.saturating_add(1);
        }
    }

    /// `model`'s queue of `level` holds `ready` jobs (a count, or what a pull left behind).
    pub fn observed(&mut self, model: &str, level: u8, ready: u32) {
        if let Some(slot) = self.slot(model, level) {
            *slot = ready;
        }
    }

    /// Every queue may hold work again (a new session, a failed pull).
    pub fn unknown(&mut self) {
        for counts in self.counts.values_mut() {
            *counts = [1; LEVELS];
        }
    }

    /// Whether any queue is believed to hold work.
    pub fn any(&self) -> bool {
        self.counts.values().any(|c| c.iter().any(|n| *n > 0))
    }

    /// The queue to pull from next: the highest level believed non-empty, models at that
    /// level in turn. The job is counted as taken at once, so slots waking together for one
    /// bell do not all pull (an empty pull on a quorum queue is a replicated command); the
    /// pull's answer then says how many really remain.
    pub fn next(&mut self) -> Option<(String, u8)> {
        for level in (0..LEVELS).rev() {
            let ready: Vec<&String> = self
                .counts
                .iter()
                .filter(|(_, c)| c[level] > 0)
                .map(|(m, _)| m)
                .collect();
            if !ready.is_empty() {
                self.turn = self.turn.wrapping_add(1);
                let model = ready[self.turn % ready.len()].clone();
                let level = u8::try_from(level).unwrap_or(0);
                if let Some(slot) = self.slot(&model, level) {
                    *slot -= 1;
                }
                return Some((model, level));
            }
        }
        None
    }

    /// Every model's queues, for the periodic count.
    pub fn queues(&self) -> Vec<(String, u8)> {
        self.counts
            .keys()
            .flat_map(|m| (0..LEVELS).map(move |l| (m.clone(), u8::try_from(l).unwrap_or(0))))
            .collect()
    }

    fn slot(&mut self, model: &str, level: u8) -> Option<&mut u32> {
        self.counts
            .get_mut(model)
            .and_then(|c| c.get_mut(usize::from(level)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(names: &[&str]) -> Vec<String> {
        names.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn the_highest_level_with_work_goes_first() {
        let mut backlog = Backlog::default();
        backlog.set_models(&models(&["a"]));
        for level in 0..5 {
            backlog.observed("a", level, 0);
        }
        assert_eq!(backlog.next(), None);
        assert!(!backlog.any());
        backlog.rang("a", 1);
        backlog.rang("a", 3);
        assert_eq!(backlog.next(), Some(("a".to_owned(), 3)));
        // Counted as taken: a second slot goes to the next queue with work.
        assert_eq!(backlog.next(), Some(("a".to_owned(), 1)));
        // The first pull says one more waits there.
        backlog.observed("a", 3, 1);
        assert_eq!(backlog.next(), Some(("a".to_owned(), 3)));
        // A bell for a model the worker does not serve changes nothing.
        backlog.rang("b", 4);
        assert_eq!(backlog.next(), None);
    }

    #[test]
    fn models_at_the_same_level_take_turns_and_new_ones_are_tried_once() {
        let mut backlog = Backlog::default();
        backlog.set_models(&models(&["a", "b"]));
        let first: Vec<String> = (0..4).filter_map(|_| backlog.next()).map(|q| q.0).collect();
        assert!(first.contains(&"a".to_owned()) && first.contains(&"b".to_owned()));
        for (model, level) in backlog.queues() {
            backlog.observed(&model, level, 0);
        }
        backlog.set_models(&models(&["b", "c"]));
        assert_eq!(backlog.next(), Some(("c".to_owned(), 4)));
        assert_eq!(backlog.queues().len(), 10);
        backlog.unknown();
        assert_eq!(backlog.next().map(|q| q.1), Some(4));
    }
}
