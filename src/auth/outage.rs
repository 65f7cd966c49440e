//! Whether the key store's database is answering, so that while it is not, requests are
//! served from the keys seen recently at once instead of each waiting for a connection
//! timeout, and the health report can say for how long.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::backend::StoreError;

/// While the database is away, how often a request may still try it (to notice its return).
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The database's state as the last queries found it.
#[derive(Debug, Default)]
pub struct Outage {
    down: Mutex<Option<Down>>,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    last_try: Instant,
}

impl Outage {
    fn lock(&self) -> MutexGuard<'_, Option<Down>> {
        self.down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A query reached the database.
    pub fn answered(&self) {
        if self.lock().take().is_some() {
            tracing::info!("the key store answers again");
        }
    }

    /// A query could not reach the database.
    pub fn failed(&self, error: &StoreError) {
        let mut down = self.lock();
        match down.as_mut() {
            Some(down) => down.last_try = Instant::now(),
            None => {
                tracing::warn!("{error}; serving keys seen recently until it answers");
                let now = Instant::now();
                *down = Some(Down {
                    since: now,
                    last_try: now,
                });
            }
        }
    }

    /// Whether a request should ask the database: always while it answers, once per
    /// [`PROBE_EVERY`] while it does not (the caller that gets `true` is the one that tries).
    pub fn may_ask(&self) -> bool {
        let mut down = self.lock();
        match down.as_mut() {
            None => true,
            Some(down) if down.last_try.elapsed() >= PROBE_EVERY => {
                down.last_try = Instant::now();
                true
            }
            Some(_) => false,
        }
    }

    /// How long the database has been unreachable; `None` while it answers.
    pub fn down_for(&self) -> Option<Duration> {
        self.lock().as_ref().map(|d| d.since.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn while_down_one_caller_a_second_may_ask() {
        let outage = Outage::default();
        assert!(outage.may_ask());
        outage.failed(&StoreError::Query(sqlx::Error::PoolTimedOut));
        assert!(!outage.may_ask(), "the failed query just tried");
        assert!(outage.down_for().is_some());
        outage.answered();
        assert!(outage.may_ask());
        assert!(outage.down_for().is_none());
    }
}
