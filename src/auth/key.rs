//! What the key store holds about a key, and the row shape both databases return it in.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// OpenAI routes only.
    User,
    /// OpenAI routes and the admin API.
    Admin,
    /// `/metrics` only, for a Prometheus scraper that needs no admin rights.
    Metrics,
}

impl Role {
    /// The value stored in the `role` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
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

/// Which keys [`KeyStore::list`](super::KeyStore::list) returns; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Only keys of this tier.
    pub tier: Option<String>,
    /// Only revoked keys (`true`) or only unrevoked ones (`false`).
    pub revoked: Option<bool>,
}

/// What [`KeyStore::update`](super::KeyStore::update) changes; `None` fields stay as they are.
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

/// A key's columns as both databases return them, in [`key_columns!`] order.
pub(super) type KeyRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

/// A [`KeyRow`] followed by the secret's hash.
pub(super) type HashedKeyRow = (
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
pub(super) use key_columns;

/// The key a row describes.
pub(super) fn from_row(
    (id, name, tier, role, created_at, revoked_at, expires_at): KeyRow,
) -> ApiKey {
    ApiKey {
        id,
        name,
        tier,
        role: match role.as_str() {
            "admin" => Role::Admin,
            "metrics" => Role::Metrics,
            _ => Role::User,
        },
        created_at,
        revoked_at,
        expires_at,
    }
}

/// A [`HashedKeyRow`] split into the key and the stored hash of its secret.
pub(super) fn from_hashed_row(
    (id, name, tier, role, created, revoked, expires, stored): HashedKeyRow,
) -> (ApiKey, Vec<u8>) {
    (
        from_row((id, name, tier, role, created, revoked, expires)),
        stored,
    )
}

/// Unix seconds now.
pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
