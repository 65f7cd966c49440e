//! The key store: API keys and small settings in SQLite (`sqlite://`, the default) or
//! PostgreSQL (`postgres://`, for gateways on many machines), migrated at start-up.
//!
//! [`KeyStore`] holds what both databases share: the bootstrap admin key, the memory of keys
//! found recently ([`KeyCache`]), and serving those keys while the database is unreachable
//! ([`Outage`]). The rows themselves are a [`KeyBackend`]'s business.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::backend::{KeyBackend, Propagation, StoreError};
use super::cache::{KeyCache, SERVE_STALE_FOR};
use super::key::now;
use super::outage::Outage;
use super::postgres::PostgresBackend;
use super::secret;
use super::sqlite::SqliteBackend;

pub use super::key::{ApiKey, KeyChanges, KeyFilter, Role, is_key_id};

/// Longest a health check waits for the database.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Handle to the key store; cheap to clone.
#[derive(Debug, Clone)]
pub struct KeyStore {
    backend: Arc<dyn KeyBackend>,
    bootstrap: Option<Bootstrap>,
    /// Keys found recently, so most requests skip the database.
    cache: Arc<KeyCache>,
    /// Whether the database is answering, and when to ask it again if not.
    outage: Arc<Outage>,
    /// Settings as last read and when that read was asked for: served while the store's
    /// watcher vouches that nothing was written since, and while the database is unreachable.
    settings: Arc<Mutex<HashMap<String, RememberedSetting>>>,
}

/// A setting's value as read (`None`: unset), and when that read was asked for.
type RememberedSetting = (Option<String>, Instant);

/// The id and name the bootstrap admin key is known by.
const BOOTSTRAP_ID: &str = "bootstrap";
const BOOTSTRAP_NAME: &str = "SEADRAGON_ADMIN_KEY";

/// The admin key given by `SEADRAGON_ADMIN_KEY`: never stored, checked first.
#[derive(Debug, Clone)]
struct Bootstrap {
    hash: [u8; 32],
    tier: String,
}

/// Whether `url` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl KeyStore {
    /// Opens and migrates the store at `url`: `postgres://` or `postgresql://` for
    /// PostgreSQL, otherwise a SQLite file (created if needed).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_cache(url, Arc::default()).await
    }

    async fn connect_with_cache(url: &str, cache: Arc<KeyCache>) -> Result<Self, StoreError> {
        let backend: Arc<dyn KeyBackend> = if is_postgres_url(url) {
            Arc::new(PostgresBackend::connect(url, Arc::clone(&cache)).await?)
        } else {
            let sqlite = SqliteBackend::connect(url).await?;
            sqlite.watch_changes(Arc::downgrade(&cache));
            Arc::new(sqlite)
        };
        Ok(Self {
            backend,
            bootstrap: None,
            cache,
            outage: Arc::default(),
            settings: Arc::default(),
        })
    }

    /// Accepts `secret` as an admin key of `tier` without storing it.
    pub fn with_bootstrap_admin(mut self, secret: &str, tier: &str) -> Self {
        self.bootstrap = Some(Bootstrap {
            hash: secret::hash(secret),
            tier: tier.to_owned(),
        });
        self
    }

    /// Notes whether the database answered, for [`Outage`] and the health report.
    fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.outage.answered(),
            Err(e) if e.is_unavailable() => self.outage.failed(e),
            Err(_) => {}
        }
        result
    }

    /// Creates a key that never expires; the returned secret is never retrievable again.
    pub async fn create(
        &self,
        name: &str,
        tier: &str,
        role: Role,
    ) -> Result<(ApiKey, String), StoreError> {
        self.create_expiring(name, tier, role, None).await
    }

    /// Creates a key refused from `expires_at` (unix seconds) on, if given.
    pub async fn create_expiring(
        &self,
        name: &str,
        tier: &str,
        role: Role,
        expires_at: Option<i64>,
    ) -> Result<(ApiKey, String), StoreError> {
        let key = ApiKey {
            id: format!("key_{}", crate::ids::random_alphanumeric(16)),
            name: name.to_owned(),
            tier: tier.to_owned(),
            role,
            created_at: now(),
            revoked_at: None,
            expires_at,
        };
        let secret = secret::generate();
        self.observe(self.backend.insert(&key, &secret::hash(&secret)).await)?;
        Ok((key, secret))
    }

    /// The key a secret belongs to, revoked or not; `None` for an unknown secret. While the
    /// database is unreachable, a key read within [`SERVE_STALE_FOR`] is served as last read.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = secret::hash(presented);
        if let Some(b) = &self.bootstrap
            && secret::hashes_equal(&b.hash, &hash)
        {
            return Ok(Some(ApiKey {
                id: BOOTSTRAP_ID.to_owned(),
                name: BOOTSTRAP_NAME.to_owned(),
                tier: b.tier.clone(),
                role: Role::Admin,
                created_at: 0,
                revoked_at: None,
                expires_at: None,
            }));
        }
        if !secret::looks_like_key(presented) {
            return Ok(None);
        }
        if let Some(key) = self.cache.get(&hash) {
            return Ok(Some(key));
        }
        let stale = || self.cache.get_stale(&hash, SERVE_STALE_FOR);
        // While the database is away, asking it on every request would make each one wait
        // for the connection timeout; one request a second finds out when it is back.
        if !self.outage.may_ask()
            && let Some(key) = stale()
        {
            return Ok(Some(key));
        }
        let ticket = self.cache.ticket();
        let row = match self.observe(self.backend.find_by_hash(&hash).await) {
            Ok(row) => row,
            Err(e) if e.is_unavailable() => return stale().map(Some).ok_or(e),
            Err(e) => return Err(e),
        };
        let key = row.and_then(|(key, stored)| secret::hashes_equal(&stored, &hash).then_some(key));
        if let Some(key) = &key {
            self.cache.put(hash, key.clone(), ticket);
        }
        Ok(key)
    }

    /// The keys `filter` selects, oldest first.
    pub async fn list(&self, filter: &KeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        self.observe(self.backend.list(filter).await)
    }

    /// One key by id.
    pub async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.observe(self.backend.get(id).await)
    }

    /// The name of the key `id`, the bootstrap admin key included (for admin views of jobs).
    pub async fn name(&self, id: &str) -> Result<Option<String>, StoreError> {
        if id == BOOTSTRAP_ID && self.bootstrap.is_some() {
            return Ok(Some(BOOTSTRAP_NAME.to_owned()));
        }
        Ok(self.get(id).await?.map(|key| key.name))
    }

    /// Changes a key's name or tier; `None` when no key has that id.
    pub async fn update(
        &self,
        id: &str,
        changes: &KeyChanges,
    ) -> Result<Option<ApiKey>, StoreError> {
        let key = self.observe(self.backend.update(id, changes).await)?;
        self.cache.forget(id);
        Ok(key)
    }

    /// Revokes a key; `None` when no key has that id. Revoking twice keeps the first time.
    pub async fn revoke(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let key = self.observe(self.backend.revoke(id, now()).await)?;
        self.cache.forget(id);
        Ok(key)
    }

    /// Whether an unrevoked admin key exists in the store.
    pub async fn has_active_admin(&self) -> Result<bool, StoreError> {
        self.observe(self.backend.has_active_admin().await)
    }

    /// A persistent setting: as last read while the store's watcher vouches that nothing was
    /// written since (the default model is looked up on every request naming `"default"`),
    /// otherwise read again; while the database is unreachable, the value last read.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        if let Some(value) = self.remembered_setting(name, true) {
            return Ok(value);
        }
        let asked = Instant::now();
        match self.observe(self.backend.setting(name).await) {
            Ok(value) => {
                self.remember_setting(name, value.clone(), asked);
                Ok(value)
            }
            Err(e) if e.is_unavailable() => self.remembered_setting(name, false).ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Sets a persistent setting.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let asked = Instant::now();
        self.observe(self.backend.set_setting(name, value).await)?;
        self.remember_setting(name, Some(value.to_owned()), asked);
        Ok(())
    }

    /// The value last read of `name`; when `vouched`, only if nothing was written since.
    fn remembered_setting(&self, name: &str, vouched: bool) -> Option<Option<String>> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (value, asked) = settings.get(name)?;
        (!vouched || self.cache.vouches_for(*asked)).then(|| value.clone())
    }

    fn remember_setting(&self, name: &str, value: Option<String>, asked: Instant) {
        self.settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), (value, asked));
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.observe(self.backend.ping().await)
    }

    /// The store's state for `/api/health`: `Ok(detail)` when the database answers.
    pub async fn health(&self) -> Result<String, String> {
        let kind = self.backend.kind();
        let answered = match tokio::time::timeout(HEALTH_TIMEOUT, self.ping()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {}s", HEALTH_TIMEOUT.as_secs())),
        };
        if let Err(why) = answered {
            let (down, seen) = (
                self.outage.down_for().unwrap_or_default(),
                self.cache.stale_count(SERVE_STALE_FOR),
            );
            return Err(format!(
                "{kind}: unreachable for {}s ({why}); serving the {seen} keys seen in the last {}s",
                down.as_secs(),
                SERVE_STALE_FOR.as_secs()
            ));
        }
        Ok(match self.backend.propagation() {
            Propagation::Polling => kind.to_owned(),
            Propagation::Listening => format!("{kind}: hearing key changes of other gateways"),
            Propagation::Lost(why) => format!(
                "{kind}: not hearing key changes of other gateways ({why}); they apply here within {}s",
                super::cache::FRESH_FOR.as_secs()
            ),
        })
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
