//! API keys: their format and hashing ([`secret`]), the key store ([`store`]) with its two
//! databases ([`sqlite`] on one machine, [`postgres`] for gateways on many, both behind
//! [`backend::KeyBackend`]), the store's short-lived memory of recently found keys ([`cache`]),
//! how other gateways' changes reach it on PostgreSQL ([`listen`]) and on a shared SQLite
//! file ([`sqlite_watch`]), and what it does while the database is away ([`outage`]). The HTTP extractors that use them live in `api::auth`.

pub mod backend;
pub mod cache;
pub mod key;
pub mod listen;
pub mod outage;
pub mod postgres;
pub mod secret;
pub mod sqlite;
pub mod sqlite_watch;
pub mod store;

pub use backend::StoreError;
pub use store::{ApiKey, KeyChanges, KeyFilter, KeyStore, Role};

/// The PostgreSQL server of this test binary (see the file's own documentation).
#[cfg(test)]
#[path = "../../tests/support/postgres.rs"]
pub(crate) mod test_postgres;

/// A TCP proxy that a test can cut, to take the database away from a store.
#[cfg(test)]
#[path = "../../tests/support/proxy.rs"]
pub(crate) mod test_proxy;
