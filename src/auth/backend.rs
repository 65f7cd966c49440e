//! The one interface both databases implement ([`KeyBackend`]), and the store's errors.
//!
//! A backend only reads and writes rows; what is shared by both (the bootstrap admin key, the
//! memory of recently found keys, serving from it while the database is away) lives in
//! [`KeyStore`](super::KeyStore), so the two databases cannot drift apart in behaviour.

use async_trait::async_trait;

use super::key::{ApiKey, KeyChanges, KeyFilter};

/// Key store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the key store {url}: {reason}")]
    Open {
        /// The database URL, without its password.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A query failed.
    #[error("key store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the database could not be reached at all (as opposed to refusing a query), so
    /// that retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Open { .. } => true,
            Self::Query(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Tls(_)
            ),
        }
    }
}

/// Where changes made by other processes stand, for the health report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Propagation {
    /// The database has no way to announce changes: other processes' changes are seen when a
    /// remembered key is read again (SQLite).
    Polling,
    /// Changes made anywhere are heard as they commit.
    Listening,
    /// The channel that announces changes is down, with the reason; remembered keys are read
    /// again on every use until it is back.
    Lost(String),
}

/// Rows of keys and settings in one database.
#[async_trait]
pub trait KeyBackend: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`, for the health report.
    fn kind(&self) -> &'static str;

    /// Whether changes made by other processes are being heard.
    fn propagation(&self) -> Propagation;

    /// Stores a new key with the hash of its secret.
    async fn insert(&self, key: &ApiKey, secret_hash: &[u8; 32]) -> Result<(), StoreError>;

    /// The key whose secret hashes to `hash`, with the stored hash (compared again by the
    /// caller in constant time).
    async fn find_by_hash(&self, hash: &[u8; 32]) -> Result<Option<(ApiKey, Vec<u8>)>, StoreError>;

    /// The keys `filter` selects, oldest first.
    async fn list(&self, filter: &KeyFilter) -> Result<Vec<ApiKey>, StoreError>;

    /// One key by id.
    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Applies `changes` and returns the key as it is now, in one transaction; `None` when no
    /// key has that id. Other processes are told the key changed.
    async fn update(&self, id: &str, changes: &KeyChanges) -> Result<Option<ApiKey>, StoreError>;

    /// Sets `revoked_at` unless already set and returns the key as it is now, in one
    /// transaction; `None` when no key has that id. Other processes are told the key changed.
    async fn revoke(&self, id: &str, at: i64) -> Result<Option<ApiKey>, StoreError>;

    /// Whether an unrevoked admin key exists.
    async fn has_active_admin(&self) -> Result<bool, StoreError>;

    /// A persistent setting.
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Sets a persistent setting.
    async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_repeated_in_messages() {
        assert_eq!(
            redact("postgres://sd:hunter2@db:5432/keys"),
            "postgres://sd:***@db:5432/keys"
        );
        assert_eq!(redact("sqlite://keys.db"), "sqlite://keys.db");
    }
}
