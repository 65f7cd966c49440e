//! A short-lived memory of keys already found in the store, so a chat request does not pay
//! a SQLite round trip (a hop to the driver's thread and back) for a key it saw a moment ago.
//!
//! Changes made through this process (revocation, a new name or tier) are applied to the
//! cache at once; expiry needs nothing, as callers check a key's `expires_at` on every use.
//! Changes made by another process sharing the same database (several gateways on one SQLite
//! file) are seen within [`FRESH_FOR`], when an entry has to be read from the store again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::ApiKey;

/// How long a key read from the store is trusted without reading it again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Entries kept at most; past this, stale ones are dropped, then everything if still full.
const CAPACITY: usize = 10_000;

/// Keys by the hash of their secret, with the time they were read.
#[derive(Debug)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
    fresh_for: Duration,
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
            entries: Mutex::default(),
            fresh_for,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], (ApiKey, Instant)>> {
        // The map holds no invariant a panic could break half-way; keep using it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key whose secret hashes to `hash`, if it was read from the store recently.
    pub fn get(&self, hash: &[u8; 32]) -> Option<ApiKey> {
        let entries = self.lock();
        let (key, read_at) = entries.get(hash)?;
        (read_at.elapsed() < self.fresh_for).then(|| key.clone())
    }

    /// Remembers a key just read from the store. Unknown secrets are never remembered, so
    /// random guesses cannot fill the cache.
    pub fn put(&self, hash: [u8; 32], key: ApiKey) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, read_at)| read_at.elapsed() < self.fresh_for);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(hash, (key, Instant::now()));
    }

    /// Forgets the key with this id, after it changed in the store.
    pub fn forget(&self, id: &str) {
        self.lock().retain(|_, (key, _)| key.id != id);
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
        cache.put([1; 32], key("key_a"));
        cache.put([2; 32], key("key_b"));
        assert_eq!(cache.get(&[1; 32]).unwrap().id, "key_a");
        cache.forget("key_a");
        assert!(cache.get(&[1; 32]).is_none());
        assert_eq!(cache.get(&[2; 32]).unwrap().id, "key_b");
    }

    #[test]
    fn an_entry_older_than_its_freshness_is_not_returned() {
        let cache = KeyCache::new(Duration::ZERO);
        cache.put([1; 32], key("key_a"));
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = KeyCache::default();
        for i in 0..=CAPACITY {
            let mut hash = [0; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.put(hash, key("key_x"));
        }
        assert!(cache.lock().len() <= CAPACITY);
    }
}
