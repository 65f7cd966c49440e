//! Key secrets: `sk-sd-<random>`, stored only as a SHA-256 hash and compared in constant time.
//!
//! A fast hash is right here: the secrets are 256-bit random strings, not passwords, so there
//! is nothing for a slow hash to protect against, and every request checks one.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix every generated key carries, so leaked keys are recognisable.
pub const PREFIX: &str = "sk-sd-";

/// A new random secret: the prefix and 43 alphanumerics (~256 bits).
pub fn generate() -> String {
    format!("{PREFIX}{}", crate::ids::random_alphanumeric(43))
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `secret` could be a generated key (saves a store lookup for obvious garbage).
pub fn looks_like_key(secret: &str) -> bool {
    secret.len() == PREFIX.len() + 43
        && secret.starts_with(PREFIX)
        && secret[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// The secret of an `Authorization: Bearer <secret>` header value.
pub fn from_bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_unique_and_well_formed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(looks_like_key(&a), "{a}");
        assert!(!looks_like_key("sk-sd-short"));
        assert!(!looks_like_key("sk-proj-abc"));
    }

    #[test]
    fn hashing_is_stable_and_comparison_exact() {
        let h = hash("sk-sd-x");
        assert_eq!(h, hash("sk-sd-x"));
        assert!(hashes_equal(&h, &hash("sk-sd-x")));
        assert!(!hashes_equal(&h, &hash("sk-sd-y")));
        assert!(!hashes_equal(&h, &h[..31]));
    }

    #[test]
    fn bearer_header_parsing_accepts_any_case_and_trims() {
        assert_eq!(from_bearer("Bearer sk-sd-abc"), Some("sk-sd-abc"));
        assert_eq!(from_bearer("bearer   sk-sd-abc "), Some("sk-sd-abc"));
        assert_eq!(from_bearer("Basic abc"), None);
        assert_eq!(from_bearer("Bearer "), None);
    }
}
