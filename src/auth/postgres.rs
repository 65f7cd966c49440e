//! The PostgreSQL key store: one database for gateways on many machines. Every change to a
//! key is announced with `NOTIFY` in the transaction that makes it, so the other gateways
//! forget that key the moment it commits ([`super::listen`]).

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tokio_util::sync::DropGuard;

use super::backend::{KeyBackend, Propagation, StoreError, redact};
use super::cache::KeyCache;
use super::key::{
    ApiKey, HashedKeyRow, KeyChanges, KeyFilter, KeyRow, from_hashed_row, from_row, key_columns,
};
use super::listen::{self, CHANNEL};

/// Connections per process: requests mostly hit the cache, and one of them listens.
const MAX_CONNECTIONS: u32 = 8;

/// How long a query waits for a connection. Short, so that while the database is away a
/// request falls back to the keys seen recently instead of hanging (see `KeyStore`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Keys and settings in a PostgreSQL database, migrated with `migrations/postgres/`.
#[derive(Debug)]
pub struct PostgresBackend {
    pool: PgPool,
    propagation: Arc<Mutex<Propagation>>,
    /// Stops the listening task when the last handle to the store is dropped.
    _listening: DropGuard,
}

impl PostgresBackend {
    /// Connects to `url`, applies the migrations and starts listening for changes made by
    /// other gateways, which are forgotten from `cache` as they commit.
    pub async fn connect(url: &str, cache: Arc<KeyCache>) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            url: redact(url),
            reason,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| open_error(e.to_string()))?
            .application_name("seadragon");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        // sqlx holds an advisory lock while migrating: gateways starting together on a new
        // database apply each migration once.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        let propagation = Arc::new(Mutex::new(Propagation::Listening));
        let listening = listen::start(pool.clone(), cache, Arc::clone(&propagation))
            .await
            .map_err(|e| open_error(format!("cannot listen for key changes: {e}")))?;
        Ok(Self {
            pool,
            propagation,
            _listening: listening.drop_guard(),
        })
    }
}

const SELECT_BY_ID: &str = concat!("SELECT ", key_columns!(), " FROM api_keys WHERE id = $1");

/// Tells every listening gateway that key `id` changed; delivered when `tx` commits, and
/// never if it rolls back.
async fn announce(tx: &mut Transaction<'_, Postgres>, id: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl KeyBackend for PostgresBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn propagation(&self) -> Propagation {
        self.propagation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn insert(&self, key: &ApiKey, secret_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (id, name, tier, role, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
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
            ", secret_hash FROM api_keys WHERE secret_hash = $1"
        ))
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(from_hashed_row))
    }

    async fn list(&self, filter: &KeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        // `$1 IS NULL` turns an absent filter into "any": one query, no string building.
        let rows: Vec<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys",
            " WHERE ($1::TEXT IS NULL OR tier = $1)",
            " AND ($2::BOOLEAN IS NULL OR (revoked_at IS NOT NULL) = $2)",
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
            "UPDATE api_keys SET name = COALESCE($1, name), tier = COALESCE($2, tier) WHERE id = $3",
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
        announce(&mut tx, id).await?;
        tx.commit().await?;
        Ok(row.map(from_row))
    }

    async fn revoke(&self, id: &str, at: i64) -> Result<Option<ApiKey>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row: Option<KeyRow> = sqlx::query_as(SELECT_BY_ID)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        announce(&mut tx, id).await?;
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
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(v,)| v))
    }

    async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
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
