//! API keys: their format and hashing ([`secret`]) and their SQLite store ([`store`]).
//! The HTTP extractors that use them live in `api::auth`.

pub mod secret;
pub mod store;

pub use store::{ApiKey, KeyChanges, KeyFilter, KeyStore, Role, StoreError};
