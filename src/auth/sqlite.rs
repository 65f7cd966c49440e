//! The SQLite key store: one file, shared by the processes of one machine. It has no way to
//! announce changes: other processes see them when they read a remembered key again, which
//! they do only after a write somewhere (see `sqlite_watch`).

use std::str::FromStr;
use std::sync::Weak;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::backend::{KeyBackend, Propagation, StoreError};
use super::cache::KeyCache;
use super::key::{
    ApiKey, HashedKeyRow, KeyChanges, KeyFilter, KeyRow, from_hashed_row, from_row, key_columns,
};

/// Keys and settings in a SQLite file, migrated with `migrations/sqlite/`.
#[derive(Debug)]
pub struct SqliteBackend {
    pool: SqlitePool,
    options: SqliteConnectOptions,
}

impl SqliteBackend {
    /// Opens (creating if needed) and migrates the database at `url`.
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
            .connect_with(options.clone())
            .await
            .map_err(|e| open_error(e.to_string()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Self { pool, options })
    }

    /// Keeps the keys in `cache` fresh while nobody writes to the file, for as long as the
    /// cache lives.
    pub fn watch_changes(&self, cache: Weak<KeyCache>) {
        super::sqlite_watch::spawn(self.options.clone(), cache);
    }
}

const SELECT_BY_ID: &str = concat!("SELECT ", key_columns!(), " FROM api_keys WHERE id = ?");

#[async_trait]
impl KeyBackend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn propagation(&self) -> Propagation {
        Propagation::Polling
    }

    async fn insert(&self, key: &ApiKey, secret_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (id, name, tier, role, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&key.id)
            .bind(&key.name)
            .bind(&key.tier)
            .bind(key.role.as_str())
            .bind(&secret_hash[..])
            .bind(key.created_at)
            .bind(key.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_by_hash(&self, hash: &[u8; 32]) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError> {
        let row: Option<HashedKeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            ", secret_hash FROM api_keys WHERE secret_hash = ?"
        ))
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(from_hashed_row))
    }

    async fn list(&self, filter: &KeyFilter) -> Result<Vec<ApiKey>, StoreError> {
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

    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(SELECT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(from_row))
    }

    async fn update(&self, id: &str, changes: &KeyChanges) -> Result<Option<ApiKey>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE api_keys SET name = COALESCE(?, name), tier = COALESCE(?, tier) WHERE id = ?",
        )
        .bind(changes.name.as_deref())
        .bind(changes.tier.as_deref())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row: Option<KeyRow> = sqlx::query_as(SELECT_BY_ID)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.map(from_row))
    }

    async fn revoke(&self, id: &str, at: i64) -> Result<Option<ApiKey>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row: Option<KeyRow> = sqlx::query_as(SELECT_BY_ID)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.map(from_row))
    }

    async fn has_active_admin(&self) -> Result<bool, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(v,)| v))
    }

    async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
