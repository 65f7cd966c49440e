//! API keys: their format and hashing ([`secret`]), their SQLite store ([`store`]) and the
//! store's short-lived memory of recently found keys ([`cache`]).
//! The HTTP extractors that use them live in `api::auth`.

pub mod cache;
pub mod secret;
pub mod store;

pub use store::{ApiKey, KeyChanges, KeyFilter, KeyStore, Role, StoreError};
