//! A short-lived memory of keys already found in the store, so a chat request does not pay
//! a database round trip for a key it saw a moment ago, and so that keys seen recently keep
//! working while the database is unreachable.
//!
//! Changes made through this process (revocation, a new name or tier) are applied to the
//! cache at once; expiry needs nothing, as callers check a key's `expires_at` on every use.
//! Changes made by another process are applied at once on PostgreSQL, whose notifications
//! call [`KeyCache::forget`]; on a shared SQLite file they are seen within [`FRESH_FOR`]: an
//! entry is read from the store again once it is that old, unless a watcher of the store
//! has since confirmed that nobody wrote to it ([`KeyCache::unchanged`]). Without that, a key
//! used less often than once per [`FRESH_FOR`] (an IDE user's, a script's) paid a database
//! round trip on every request.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::ApiKey;

/// How long a key read from the store is trusted without reading it again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// How long a key read from the store may still be served while the store is unreachable.
/// Bounded, because a key revoked elsewhere meanwhile is not heard of: a gateway cut off from
/// the database keeps its recent users working through a restart or failover of the database,
/// not for ever.
pub const SERVE_STALE_FOR: Duration = Duration::from_secs(120);

/// Entries kept at most; past this, old ones are dropped, then everything if still full.
const CAPACITY: usize = 10_000;

/// Keys by the hash of their secret, with the time they were read.
#[derive(Debug)]
pub struct KeyCache {
    inner: Mutex<Inner>,
    fresh_for: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<[u8; 32], Entry>,
    /// Raised by every [`KeyCache::forget`] and [`KeyCache::invalidate`]: a lookup that started
    /// before a change must not store what it read, which may predate the change.
    generation: u64,
    /// Raised by [`KeyCache::invalidate`]: entries of an older epoch are not fresh.
    epoch: u64,
    /// The store's watcher's latest word, if it has one.
    unchanged: Option<Unchanged>,
}

/// What a watcher of the store confirmed: nothing was written to the store from `since` up to
/// `through`. An entry whose lookup started at or after `since` is then as good as one read
/// at `through`.
#[derive(Debug, Clone, Copy)]
struct Unchanged {
    since: Instant,
    through: Instant,
}

#[derive(Debug)]
struct Entry {
    key: ApiKey,
    /// When the lookup that read it started: the row is at least this recent.
    asked_at: Instant,
    read_at: Instant,
    epoch: u64,
}

/// Taken before reading a key from the store, handed back to [`KeyCache::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    at: Instant,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new(FRESH_FOR)
    }
}

impl KeyCache {
    /// An empty cache trusting entries for `fresh_for`.
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            fresh_for,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map holds no invariant a panic could break half-way; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key whose secret hashes to `hash`, if it was read from the store recently and
    /// nothing made it doubtful since.
    pub fn get(&self, hash: &[u8; 32]) -> Option<ApiKey> {
        let inner = self.lock();
        let entry = inner.entries.get(hash)?;
        let fresh =
            entry.read_at.elapsed() < self.fresh_for || self.vouched(&inner, entry.asked_at);
        (entry.epoch == inner.epoch && fresh).then(|| entry.key.clone())
    }

    /// Whether a read of the store asked for at `asked_at` is still as good as a fresh one,
    /// because the store's watcher saw nothing written since (see [`Self::unchanged`]).
    pub fn vouches_for(&self, asked_at: Instant) -> bool {
        self.vouched(&self.lock(), asked_at)
    }

    fn vouched(&self, inner: &Inner, asked_at: Instant) -> bool {
        inner
            .unchanged
            .is_some_and(|u| asked_at >= u.since && u.through.elapsed() < self.fresh_for)
    }

    /// A watcher of the store saw nothing written to it from `since` up to `through` (both
    /// taken on the watcher's side so that they are conservative: `since` after the check
    /// that began the quiet spell returned, `through` before the latest check was asked).
    pub fn unchanged(&self, since: Instant, through: Instant) {
        self.lock().unchanged = Some(Unchanged { since, through });
    }

    /// The key whose secret hashes to `hash`, if it was read from the store within `within`,
    /// fresh or not: what may be served while the store cannot be asked.
    pub fn get_stale(&self, hash: &[u8; 32], within: Duration) -> Option<ApiKey> {
        let inner = self.lock();
        let entry = inner.entries.get(hash)?;
        (entry.read_at.elapsed() < within).then(|| entry.key.clone())
    }

    /// How many keys read within `within` could be served while the store cannot be asked.
    pub fn stale_count(&self, within: Duration) -> usize {
        let inner = self.lock();
        inner
            .entries
            .values()
            .filter(|e| e.read_at.elapsed() < within)
            .count()
    }

    /// Marks the start of a store lookup whose result will be [`put`](Self::put).
    pub fn ticket(&self) -> Ticket {
        Ticket {
            generation: self.lock().generation,
            at: Instant::now(),
        }
    }

    /// Remembers a key just read from the store, unless a key changed since `ticket` was
    /// taken (what was read may predate that change). Unknown secrets are never remembered,
    /// so random guesses cannot fill the cache.
    pub fn put(&self, hash: [u8; 32], key: ApiKey, ticket: Ticket) {
        let mut inner = self.lock();
        if inner.generation != ticket.generation {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner
                .entries
                .retain(|_, e| e.read_at.elapsed() < SERVE_STALE_FOR);
            if inner.entries.len() >= CAPACITY {
                inner.entries.clear();
            }
        }
        let epoch = inner.epoch;
        inner.entries.insert(
            hash,
            Entry {
                key,
                asked_at: ticket.at,
                read_at: Instant::now(),
                epoch,
            },
        );
    }

    /// Forgets the key with this id, after it changed in the store.
    pub fn forget(&self, id: &str) {
        let mut inner = self.lock();
        inner.entries.retain(|_, e| e.key.id != id);
        inner.generation += 1;
    }

    /// Makes every entry stale (changes may have been missed), keeping them for
    /// [`get_stale`](Self::get_stale).
    pub fn invalidate(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn key(id: &str) -> ApiKey {
        ApiKey {
            id: id.to_owned(),
            name: "n".to_owned(),
            tier: "pro".to_owned(),
            role: Role::User,
            created_at: 0,
            revoked_at: None,
            expires_at: None,
        }
    }

    #[test]
    fn a_remembered_key_is_returned_until_forgotten() {
        let cache = KeyCache::default();
        cache.put([1; 32], key("key_a"), cache.ticket());
        cache.put([2; 32], key("key_b"), cache.ticket());
        assert_eq!(cache.get(&[1; 32]).unwrap().id, "key_a");
        cache.forget("key_a");
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get_stale(&[1; 32], SERVE_STALE_FOR).is_none());
        assert_eq!(cache.get(&[2; 32]).unwrap().id, "key_b");
    }

    #[test]
    fn an_entry_older_than_its_freshness_is_not_returned_but_may_be_served_stale() {
        let cache = KeyCache::new(Duration::ZERO);
        cache.put([1; 32], key("key_a"), cache.ticket());
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get_stale(&[1; 32], SERVE_STALE_FOR).is_some());
        assert!(cache.get_stale(&[1; 32], Duration::ZERO).is_none());
        assert_eq!(cache.stale_count(SERVE_STALE_FOR), 1);
    }

    #[test]
    fn a_confirmed_quiet_store_keeps_entries_read_during_the_quiet_spell_fresh() {
        let cache = KeyCache::new(Duration::from_millis(50));
        let quiet_since = Instant::now();
        cache.put([1; 32], key("key_a"), cache.ticket());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&[1; 32]).is_none(), "older than its freshness");
        cache.unchanged(quiet_since, Instant::now());
        assert!(cache.get(&[1; 32]).is_some(), "confirmed by the watcher");
        // The confirmation ages like a read: without a newer one the entry goes stale.
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn a_quiet_spell_that_began_after_a_lookup_does_not_vouch_for_it() {
        let cache = KeyCache::new(Duration::from_millis(50));
        cache.put([1; 32], key("key_a"), cache.ticket());
        std::thread::sleep(Duration::from_millis(60));
        // Something was written just before the quiet spell: the entry may predate it.
        cache.unchanged(Instant::now(), Instant::now());
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn a_confirmation_does_not_revive_invalidated_entries() {
        let cache = KeyCache::new(Duration::from_millis(50));
        let quiet_since = Instant::now();
        cache.put([1; 32], key("key_a"), cache.ticket());
        cache.invalidate();
        cache.unchanged(quiet_since, Instant::now());
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn a_lookup_that_raced_a_change_is_not_remembered() {
        let cache = KeyCache::default();
        let ticket = cache.ticket();
        // Key a was revoked elsewhere while this lookup read its old row.
        cache.forget("key_a");
        cache.put([1; 32], key("key_a"), ticket);
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn invalidated_entries_are_read_again_but_kept_for_outages() {
        let cache = KeyCache::default();
        cache.put([1; 32], key("key_a"), cache.ticket());
        cache.invalidate();
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get_stale(&[1; 32], SERVE_STALE_FOR).is_some());
        cache.put([1; 32], key("key_a"), cache.ticket());
        assert!(cache.get(&[1; 32]).is_some());
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = KeyCache::default();
        for i in 0..=CAPACITY {
            let mut hash = [0; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.put(hash, key("key_x"), cache.ticket());
        }
        assert!(cache.lock().entries.len() <= CAPACITY);
    }
}
