//! The key store's behaviour, one suite run against each database: every test below runs
//! once on a SQLite file and once on a PostgreSQL database of its own (`tests/support/`).
//! What only one database can do (SQLite's stale reads, PostgreSQL's notifications and its
//! outages) is in `store_tests_shared.rs`.

use super::*;
use crate::auth::test_postgres::{TestDatabase, database};

/// Where a test's store lives, kept alive as long as the test runs.
pub(super) struct Fixture {
    pub(super) url: String,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

impl Fixture {
    pub(super) fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: format!("sqlite://{}", dir.path().join("keys.db").display()),
            _dir: Some(dir),
            _db: None,
        }
    }

    pub(super) async fn postgres() -> Self {
        let db = database().await;
        Self {
            url: db.url.clone(),
            _dir: None,
            _db: Some(db),
        }
    }

    /// Another handle on the same database, as another process would open it.
    pub(super) async fn open(&self) -> KeyStore {
        KeyStore::connect(&self.url).await.unwrap()
    }
}

/// Runs each named test against both databases.
macro_rules! on_both_databases {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Fixture::sqlite()).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Fixture::postgres().await).await;
            })*
        }
    };
}

on_both_databases!(
    a_created_key_authenticates_until_revoked_and_survives_reopening,
    a_cached_key_is_refused_at_once_when_revoked_here,
    a_cached_key_has_its_new_tier_at_once,
    the_bootstrap_key_is_an_admin_that_is_never_stored,
    settings_are_upserted_and_shared_by_every_handle,
    lists_filter_by_tier_and_revocation,
    updates_change_only_the_given_fields_and_expiry_is_kept,
    a_key_past_its_expiry_is_expired,
    the_health_report_names_the_database,
);

async fn a_created_key_authenticates_until_revoked_and_survives_reopening(f: Fixture) {
    let s = f.open().await;
    let (key, secret) = s.create("ci", "pro", Role::User).await.unwrap();
    let found = s.authenticate(&secret).await.unwrap().unwrap();
    assert_eq!(found.id, key.id);
    assert_eq!(found.revoked_at, None);
    assert!(s.authenticate(&secret::generate()).await.unwrap().is_none());
    let revoked = s.revoke(&key.id).await.unwrap().unwrap();
    let again = s.revoke(&key.id).await.unwrap().unwrap();
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "the first time is kept"
    );
    assert!(s.revoke("key_0000000000000000").await.unwrap().is_none());

    let reopened = f.open().await;
    let again = reopened.authenticate(&secret).await.unwrap().unwrap();
    assert!(again.revoked_at.is_some());
    assert_eq!(reopened.list(&KeyFilter::default()).await.unwrap().len(), 1);
}

async fn a_cached_key_is_refused_at_once_when_revoked_here(f: Fixture) {
    let s = f.open().await;
    let (key, secret) = s.create("ci", "pro", Role::User).await.unwrap();
    assert!(s.authenticate(&secret).await.unwrap().is_some());
    s.revoke(&key.id).await.unwrap();
    let here = s.authenticate(&secret).await.unwrap().unwrap();
    assert!(here.revoked_at.is_some(), "revoked through this store");
}

async fn a_cached_key_has_its_new_tier_at_once(f: Fixture) {
    let s = f.open().await;
    let (key, secret) = s.create("ci", "free", Role::User).await.unwrap();
    assert_eq!(s.authenticate(&secret).await.unwrap().unwrap().tier, "free");
    let changes = KeyChanges {
        tier: Some("pro".to_owned()),
        ..KeyChanges::default()
    };
    s.update(&key.id, &changes).await.unwrap();
    assert_eq!(s.authenticate(&secret).await.unwrap().unwrap().tier, "pro");
}

async fn the_bootstrap_key_is_an_admin_that_is_never_stored(f: Fixture) {
    let s = f.open().await;
    let s = s.with_bootstrap_admin("my-own-admin-secret", "enterprise");
    let key = s
        .authenticate("my-own-admin-secret")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.role, Role::Admin);
    assert!(!s.has_active_admin().await.unwrap());
    assert!(s.list(&KeyFilter::default()).await.unwrap().is_empty());
    s.create("admin", "enterprise", Role::Admin).await.unwrap();
    assert!(s.has_active_admin().await.unwrap());
    assert_eq!(
        s.name("bootstrap").await.unwrap().as_deref(),
        Some("SEADRAGON_ADMIN_KEY")
    );
}

async fn settings_are_upserted_and_shared_by_every_handle(f: Fixture) {
    let (s, other) = (f.open().await, f.open().await);
    assert_eq!(s.setting("default_model").await.unwrap(), None);
    s.set_setting("default_model", "a").await.unwrap();
    s.set_setting("default_model", "b").await.unwrap();
    assert_eq!(
        s.setting("default_model").await.unwrap().as_deref(),
        Some("b")
    );
    assert_eq!(
        other.setting("default_model").await.unwrap().as_deref(),
        Some("b")
    );
}

async fn lists_filter_by_tier_and_revocation(f: Fixture) {
    let s = f.open().await;
    let (free, _) = s.create("a", "free", Role::User).await.unwrap();
    let (pro, _) = s.create("b", "pro", Role::User).await.unwrap();
    s.revoke(&pro.id).await.unwrap();
    let ids = |keys: Vec<ApiKey>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    let by = |tier: Option<&str>, revoked: Option<bool>| KeyFilter {
        tier: tier.map(str::to_owned),
        revoked,
    };
    assert_eq!(
        ids(s.list(&by(Some("free"), None)).await.unwrap()),
        [free.id.as_str()]
    );
    assert_eq!(
        ids(s.list(&by(None, Some(true))).await.unwrap()),
        [pro.id.as_str()]
    );
    assert_eq!(
        ids(s.list(&by(None, Some(false))).await.unwrap()),
        [free.id.as_str()]
    );
    assert!(
        s.list(&by(Some("pro"), Some(false)))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.list(&by(None, None)).await.unwrap().len(), 2);
}

async fn updates_change_only_the_given_fields_and_expiry_is_kept(f: Fixture) {
    let s = f.open().await;
    let (key, secret) = s
        .create_expiring("old", "free", Role::User, Some(now() + 60))
        .await
        .unwrap();
    let renamed = s
        .update(
            &key.id,
            &KeyChanges {
                name: Some("new".into()),
                tier: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.tier.as_str()),
        ("new", "free")
    );
    let moved = s
        .update(
            &key.id,
            &KeyChanges {
                name: None,
                tier: Some("pro".into()),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((moved.name.as_str(), moved.tier.as_str()), ("new", "pro"));
    let found = s.authenticate(&secret).await.unwrap().unwrap();
    assert_eq!(found.expires_at, key.expires_at);
    assert!(!found.is_expired());
    let nothing = KeyChanges::default();
    let missing = s.update("key_0000000000000000", &nothing).await.unwrap();
    assert!(missing.is_none());
}

async fn a_key_past_its_expiry_is_expired(f: Fixture) {
    let s = f.open().await;
    let (key, _) = s
        .create_expiring("short", "free", Role::User, Some(now() - 1))
        .await
        .unwrap();
    assert!(key.is_expired());
    let stored = s.get(&key.id).await.unwrap().unwrap();
    assert!(stored.is_expired());
}

async fn the_health_report_names_the_database(f: Fixture) {
    let s = f.open().await;
    let detail = s.health().await.unwrap();
    let kind = if is_postgres_url(&f.url) {
        "postgres"
    } else {
        "sqlite"
    };
    assert!(detail.starts_with(kind), "{detail}");
}

#[test]
fn key_ids_are_recognised_by_shape() {
    assert!(is_key_id("key_7fQ2mZpXc9LkT1aB"));
    assert!(!is_key_id("key_short"));
    assert!(!is_key_id("key_7fQ2mZpXc9LkT1a!"));
    assert!(!is_key_id("bootstrap"));
}

#[test]
fn postgres_urls_are_recognised_by_scheme() {
    assert!(is_postgres_url("postgres://db/keys"));
    assert!(is_postgres_url("postgresql://u:p@db:5432/keys"));
    assert!(!is_postgres_url("sqlite://seadragon.db"));
}

#[path = "store_tests_shared.rs"]
mod shared;
