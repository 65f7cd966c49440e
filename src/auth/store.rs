//! The key store: API keys and small settings in SQLite, migrated at start-up.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

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
}

/// The admin key given by `SEADRAGON_ADMIN_KEY`: never stored, checked first.
#[derive(Debug, Clone)]
struct Bootstrap {
    hash: [u8; 32],
    tier: String,
}

type KeyRow = (String, String, String, String, i64, Option<i64>);
type HashedKeyRow = (Vec<u8>, String, String, String, String, i64, Option<i64>);

fn from_row((id, name, tier, role, created_at, revoked_at): KeyRow) -> ApiKey {
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

    /// Creates a key; the returned secret is never retrievable again.
    pub async fn create(
        &self,
        name: &str,
        tier: &str,
        role: Role,
    ) -> Result<(ApiKey, String), StoreError> {
        let key = ApiKey {
            id: format!("key_{}", crate::ids::random_alphanumeric(16)),
            name: name.to_owned(),
            tier: tier.to_owned(),
            role,
            created_at: now(),
            revoked_at: None,
        };
        let secret = secret::generate();
        sqlx::query("INSERT INTO api_keys (id, name, tier, role, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&key.id)
            .bind(&key.name)
            .bind(&key.tier)
            .bind(role.as_str())
            .bind(&secret::hash(&secret)[..])
            .bind(key.created_at)
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
                id: "bootstrap".to_owned(),
                name: "SEADRAGON_ADMIN_KEY".to_owned(),
                tier: b.tier.clone(),
                role: Role::Admin,
                created_at: 0,
                revoked_at: None,
            }));
        }
        if !secret::looks_like_key(presented) {
            return Ok(None);
        }
        let row: Option<HashedKeyRow> = sqlx::query_as(
            "SELECT secret_hash, id, name, tier, role, created_at, revoked_at FROM api_keys WHERE secret_hash = ?",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.and_then(|(stored, id, name, tier, role, created, revoked)| {
                secret::hashes_equal(&stored, &hash)
                    .then(|| from_row((id, name, tier, role, created, revoked)))
            }),
        )
    }

    /// All keys, oldest first.
    pub async fn list(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, name, tier, role, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// One key by id.
    pub async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT id, name, tier, role, created_at, revoked_at FROM api_keys WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(from_row))
    }

    /// Revokes a key; `None` when no key has that id. Revoking twice keeps the first time.
    pub async fn revoke(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
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
mod tests {
    use super::*;

    async fn store() -> (KeyStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("keys.db").display());
        (KeyStore::connect(&url).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn a_created_key_authenticates_until_revoked_and_survives_reopening() {
        let (s, dir) = store().await;
        let (key, secret) = s.create("ci", "pro", Role::User).await.unwrap();
        let found = s.authenticate(&secret).await.unwrap().unwrap();
        assert_eq!(found.id, key.id);
        assert_eq!(found.revoked_at, None);
        assert!(s.authenticate(&secret::generate()).await.unwrap().is_none());
        s.revoke(&key.id).await.unwrap();

        let url = format!("sqlite://{}", dir.path().join("keys.db").display());
        let reopened = KeyStore::connect(&url).await.unwrap();
        let again = reopened.authenticate(&secret).await.unwrap().unwrap();
        assert!(again.revoked_at.is_some());
        assert_eq!(reopened.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_bootstrap_key_is_an_admin_that_is_never_stored() {
        let (s, _dir) = store().await;
        let s = s.with_bootstrap_admin("my-own-admin-secret", "enterprise");
        let key = s
            .authenticate("my-own-admin-secret")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.role, Role::Admin);
        assert!(!s.has_active_admin().await.unwrap());
        assert!(s.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn settings_are_upserted() {
        let (s, _dir) = store().await;
        assert_eq!(s.setting("default_model").await.unwrap(), None);
        s.set_setting("default_model", "a").await.unwrap();
        s.set_setting("default_model", "b").await.unwrap();
        assert_eq!(
            s.setting("default_model").await.unwrap().as_deref(),
            Some("b")
        );
    }
}
