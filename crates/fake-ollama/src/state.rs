//! What every handler shares: the configuration, Ollama's scheduler slots, the `#hold` gate,
//! the current timing and the log of what the fake saw and did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{FakeConfig, FakeModel};
use crate::wire::with_tag;

/// What the fake saw and did; the lists hold prompts (last user message) in event order.
/// With `record: false` the lists stay empty and only the counters move.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) chat_requests: Vec<Value>,
    /// `/api/generate` and `/api/embed` bodies, in arrival order.
    pub(crate) generate_requests: Vec<Value>,
    pub(crate) embed_requests: Vec<Value>,
    /// Models that generated or embedded, for `/api/ps`.
    pub(crate) loaded: Vec<String>,
    pub(crate) started: Vec<String>,
    pub(crate) finished: Vec<String>,
    pub(crate) cancelled: Vec<String>,
    pub(crate) running: usize,
    pub(crate) max_concurrent: usize,
    pub(crate) queued: usize,
}

/// The delays of later generations, in nanoseconds: atomics, so the benchmark can change them
/// between phases and thousands of requests per second read them without a lock.
#[derive(Debug, Default)]
pub(crate) struct Timing {
    first_token: AtomicU64,
    token: AtomicU64,
}

impl Timing {
    pub(crate) fn set(&self, first_token: Duration, token: Duration) {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.first_token
            .store(nanos(first_token), Ordering::Relaxed);
        self.token.store(nanos(token), Ordering::Relaxed);
    }

    /// (time to the first token, time between tokens).
    pub(crate) fn get(&self) -> (Duration, Duration) {
        let first = Duration::from_nanos(self.first_token.load(Ordering::Relaxed));
        (
            first,
            Duration::from_nanos(self.token.load(Ordering::Relaxed)),
        )
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: FakeConfig,
    /// Ollama's scheduler slots; a generation holds one until it ends or its client leaves.
    pub(crate) slots: Arc<Semaphore>,
    /// Gate for `#hold`: `release` closes it for good.
    pub(crate) holds: Semaphore,
    pub(crate) timing: Timing,
    log: Mutex<Log>,
    /// Bumped after every change to `log`, so tests can await a condition without polling.
    changed: watch::Sender<()>,
    /// Cancelled by `stop`: the listener closes and every running generation aborts.
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    pub(crate) fn new(config: FakeConfig) -> Self {
        let timing = Timing::default();
        timing.set(config.first_token_delay, config.token_delay);
        let parallel = config.parallel.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(parallel)),
            holds: Semaphore::new(0),
            timing,
            log: Mutex::default(),
            changed: watch::Sender::new(()),
            shutdown: CancellationToken::new(),
            config,
        }
    }

    pub(crate) fn record<R>(&self, change: impl FnOnce(&mut Log) -> R) -> R {
        let result = change(&mut self.log.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.send_replace(());
        result
    }

    /// Appends `item` to one of the log's lists, unless recording is off.
    pub(crate) fn note<T>(&self, list: impl FnOnce(&mut Log) -> &mut Vec<T>, item: T) {
        if self.config.record {
            self.record(|log| list(log).push(item));
        }
    }

    pub(crate) fn read<R>(&self, query: impl FnOnce(&Log) -> R) -> R {
        query(&self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) async fn wait_until(&self, condition: impl Fn(&Log) -> bool) {
        // `self.changed` lives as long as `self`, so the channel cannot close under us.
        let _ = self
            .changed
            .subscribe()
            .wait_for(|()| self.read(&condition))
            .await;
    }

    /// Finds a model by its installed name, or by that name without `:latest`.
    pub(crate) fn model(&self, name: &str) -> Option<&FakeModel> {
        let tagged = with_tag(name);
        self.config
            .models
            .iter()
            .find(|m| m.name == name || m.name == tagged)
    }
}
