//! The key store: API keys and small settings in SQLite, migrated at start-up.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::cache::KeyCache;
use super::secret;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// OpenAI routes only.
    User,
    /// OpenAI routes and the admin API.
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// A key as the store knows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// `key_...`.
    pub id: String,
    /// Human-readable label.
    pub name: String,
    /// Tier name.
    pub tier: String,
    /// What the key may do.
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; set once revoked.
    pub revoked_at: Option<i64>,
    /// Unix seconds from which the key is refused; `None` for a key that never expires.
    pub expires_at: Option<i64>,
}

impl ApiKey {
    /// Whether the key's expiry time has passed.
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= now())
    }
}

/// Which keys [`KeyStore::list`] returns; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Only keys of this tier.
    pub tier: Option<String>,
    /// Only revoked keys (`true`) or only unrevoked ones (`false`).
    pub revoked: Option<bool>,
}

/// What [`KeyStore::update`] changes; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct KeyChanges {
    /// A new label.
    pub name: Option<String>,
    /// A new tier.
    pub tier: Option<String>,
}

/// Whether `id` has the shape of a generated key id (`key_` and 16 alphanumerics).
pub fn is_key_id(id: &str) -> bool {
    id.strip_prefix("key_")
        .is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Key store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the key store {url}: {reason}")]
    Open {
        /// The database URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A query failed.
    #[error("key store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Handle to the key store; cheap to clone.
#[derive(Debug, Clone)]
pub struct KeyStore {
    pool: SqlitePool,
    bootstrap: Option<Bootstrap>,
    /// Keys found recently, so most requests skip the database.
    cache: Arc<KeyCache>,
}

/// The id and name the bootstrap admin key is known by.
const BOOTSTRAP_ID: &str = "bootstrap";
const BOOTSTRAP_NAME: &str = "SEADRAGON_ADMIN_KEY";

/// The admin key given by `SEADRAGON_ADMIN_KEY`: never stored, checked first.
#[derive(Debug, Clone)]
struct Bootstrap {
    hash: [u8; 32],
    tier: String,
}

type KeyRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);
/// A [`KeyRow`] followed by the secret's hash.
type HashedKeyRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Vec<u8>,
);

/// The columns of a [`KeyRow`], in order, as a literal so queries stay `&'static str`.
macro_rules! key_columns {
    () => {
        "id, name, tier, role, created_at, revoked_at, expires_at"
    };
}

fn from_row((id, name, tier, role, created_at, revoked_at, expires_at): KeyRow) -> ApiKey {
    ApiKey {
        id,
        name,
        tier,
        role: if role == "admin" {
            Role::Admin
        } else {
            Role::User
        },
        created_at,
        revoked_at,
        expires_at,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl KeyStore {
    /// Opens (creating if needed) and migrates the store at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            url: url.to_owned(),
            reason,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| open_error(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            pool,
            bootstrap: None,
            cache: Arc::default(),
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
        sqlx::query("INSERT INTO api_keys (id, name, tier, role, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&key.id)
            .bind(&key.name)
            .bind(&key.tier)
            .bind(role.as_str())
            .bind(&secret::hash(&secret)[..])
            .bind(key.created_at)
            .bind(key.expires_at)
            .execute(&self.pool)
            .await?;
        Ok((key, secret))
    }

    /// The key a secret belongs to, revoked or not; `None` for an unknown secret.
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
        let row: Option<HashedKeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            ", secret_hash FROM api_keys WHERE secret_hash = ?"
        ))
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        let key = row.and_then(
            |(id, name, tier, role, created, revoked, expires, stored)| {
                secret::hashes_equal(&stored, &hash)
                    .then(|| from_row((id, name, tier, role, created, revoked, expires)))
            },
        );
        if let Some(key) = &key {
            self.cache.put(hash, key.clone());
        }
        Ok(key)
    }

    /// The keys `filter` selects, oldest first.
    pub async fn list(&self, filter: &KeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        // `?1 IS NULL` turns an absent filter into "any": one query, no string building.
        let rows: Vec<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys",
            " WHERE (?1 IS NULL OR tier = ?1) AND (?2 IS NULL OR (revoked_at IS NOT NULL) = ?2)",
            " ORDER BY created_at, id"
        ))
        .bind(filter.tier.as_deref())
        .bind(filter.revoked)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// One key by id.
    pub async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(from_row))
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
        sqlx::query(
            "UPDATE api_keys SET name = COALESCE(?, name), tier = COALESCE(?, tier) WHERE id = ?",
        )
        .bind(changes.name.as_deref())
        .bind(changes.tier.as_deref())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.cache.forget(id);
        self.get(id).await
    }

    /// Revokes a key; `None` when no key has that id. Revoking twice keeps the first time.
    pub async fn revoke(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.cache.forget(id);
        self.get(id).await
    }

    /// Whether an unrevoked admin key exists in the store.
    pub async fn has_active_admin(&self) -> Result<bool, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// A persistent setting.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(v,)| v))
    }

    /// Sets a persistent setting.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
