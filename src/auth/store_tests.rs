//! Unit tests of the key store against a SQLite file.

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
    assert_eq!(reopened.list(&KeyFilter::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_cached_key_is_refused_at_once_when_revoked_here_and_soon_when_revoked_elsewhere() {
    let (s, dir) = store().await;
    let (key, secret) = s.create("ci", "pro", Role::User).await.unwrap();
    assert!(s.authenticate(&secret).await.unwrap().is_some());
    s.revoke(&key.id).await.unwrap();
    let here = s.authenticate(&secret).await.unwrap().unwrap();
    assert!(here.revoked_at.is_some(), "revoked through this store");

    // Another gateway on the same database file sees the revocation once its entry is stale.
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let mut other = KeyStore::connect(&url).await.unwrap();
    other.cache = Arc::new(KeyCache::new(Duration::from_millis(50)));
    let (key, secret) = s.create("ci2", "pro", Role::User).await.unwrap();
    assert!(other.authenticate(&secret).await.unwrap().is_some());
    s.revoke(&key.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let there = other.authenticate(&secret).await.unwrap().unwrap();
    assert!(there.revoked_at.is_some(), "revoked through another store");
}

#[tokio::test]
async fn a_cached_key_has_its_new_tier_at_once() {
    let (s, _dir) = store().await;
    let (key, secret) = s.create("ci", "free", Role::User).await.unwrap();
    assert_eq!(s.authenticate(&secret).await.unwrap().unwrap().tier, "free");
    let changes = KeyChanges {
        tier: Some("pro".to_owned()),
        ..KeyChanges::default()
    };
    s.update(&key.id, &changes).await.unwrap();
    assert_eq!(s.authenticate(&secret).await.unwrap().unwrap().tier, "pro");
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
    assert!(s.list(&KeyFilter::default()).await.unwrap().is_empty());
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

#[tokio::test]
async fn lists_filter_by_tier_and_revocation() {
    let (s, _dir) = store().await;
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

#[tokio::test]
async fn updates_change_only_the_given_fields_and_expiry_is_kept() {
    let (s, _dir) = store().await;
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

#[tokio::test]
async fn a_key_past_its_expiry_is_expired() {
    let (s, _dir) = store().await;
    let (key, _) = s
        .create_expiring("short", "free", Role::User, Some(now() - 1))
        .await
        .unwrap();
    assert!(key.is_expired());
}

#[test]
fn key_ids_are_recognised_by_shape() {
    assert!(is_key_id("key_7fQ2mZpXc9LkT1aB"));
    assert!(!is_key_id("key_short"));
    assert!(!is_key_id("bootstrap"));
    assert!(!is_key_id("key_7fQ2mZpXc9LkT1a!"));
}
