//! How a change reaches the other processes sharing a database, and what a store does while
//! its database is away: SQLite's processes see changes once their entry is stale (which a
//! quiet file postpones), PostgreSQL's
//! hear them as they commit; a store cut off from PostgreSQL serves the keys it saw recently,
//! says so in its health report, and recovers when the database returns.

use std::future::Future;
use std::time::Instant;

use super::super::*;
use super::Fixture;
use crate::auth::test_proxy::Proxy;

/// Polls `condition` every millisecond until it holds; fails after `limit`. Returns how long
/// it took.
async fn within<F, Fut>(limit: Duration, what: &str, condition: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn sqlite_another_process_sees_a_revocation_once_its_entry_is_stale() {
    let f = Fixture::sqlite();
    let s = f.open().await;
    let other =
        KeyStore::connect_with_cache(&f.url, Arc::new(KeyCache::new(Duration::from_millis(50))))
            .await
            .unwrap();
    let (key, secret) = s.create("ci", "pro", Role::User).await.unwrap();
    assert!(other.authenticate(&secret).await.unwrap().is_some());
    s.revoke(&key.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let there = other.authenticate(&secret).await.unwrap().unwrap();
    assert!(there.revoked_at.is_some(), "revoked through another store");
}

/// How fresh the watched store's entries are in the tests of the SQLite watcher.
const WATCHED_FRESH_FOR: Duration = Duration::from_millis(400);

/// Two stores on one SQLite file, as two processes would open it: the first to write through,
/// the other watched, trusting its reads for [`WATCHED_FRESH_FOR`].
async fn writer_and_watched(f: &Fixture) -> (KeyStore, KeyStore) {
    let s = f.open().await;
    let cache = Arc::new(KeyCache::new(WATCHED_FRESH_FOR));
    let other = KeyStore::connect_with_cache(&f.url, cache).await.unwrap();
    (s, other)
}

/// Long enough for the watcher to see the last write, then begin a quiet spell.
async fn until_quiet() {
    tokio::time::sleep(2 * crate::auth::sqlite_watch::CHECK_EVERY + Duration::from_millis(50))
        .await;
}

/// Well past [`WATCHED_FRESH_FOR`].
async fn past_freshness() {
    tokio::time::sleep(2 * WATCHED_FRESH_FOR + Duration::from_millis(200)).await;
}

#[tokio::test]
async fn sqlite_a_key_stays_fresh_while_nobody_writes_and_a_write_elsewhere_still_ends_that() {
    let f = Fixture::sqlite();
    let (s, other) = writer_and_watched(&f).await;
    let (key, secret) = s.create("ci", "pro", Role::User).await.unwrap();
    until_quiet().await;
    assert!(other.authenticate(&secret).await.unwrap().is_some());
    past_freshness().await;
    let hash = secret::hash(&secret);
    assert!(
        other.cache.get(&hash).is_some(),
        "long past its freshness, but nobody wrote since it was read: no query needed"
    );
    s.revoke(&key.id).await.unwrap();
    within(
        WATCHED_FRESH_FOR + Duration::from_millis(500),
        "the revocation reaches the other store within its freshness",
        || async {
            let found = other.authenticate(&secret).await.unwrap().unwrap();
            found.revoked_at.is_some()
        },
    )
    .await;
}

#[tokio::test]
async fn sqlite_a_setting_is_not_read_again_while_nobody_writes_and_a_change_elsewhere_arrives() {
    let f = Fixture::sqlite();
    let (s, other) = writer_and_watched(&f).await;
    s.set_setting("default_model", "a:latest").await.unwrap();
    until_quiet().await;
    assert_eq!(
        other.setting("default_model").await.unwrap().as_deref(),
        Some("a:latest")
    );
    past_freshness().await;
    assert_eq!(
        other.remembered_setting("default_model", true),
        Some(Some("a:latest".to_owned())),
        "nobody wrote since it was read: served without a query"
    );
    s.set_setting("default_model", "b:latest").await.unwrap();
    within(
        WATCHED_FRESH_FOR + Duration::from_millis(500),
        "the new default reaches the other store within its freshness",
        || async { other.setting("default_model").await.unwrap().as_deref() == Some("b:latest") },
    )
    .await;
}

#[tokio::test]
async fn postgres_another_gateway_forgets_a_moved_or_revoked_key_as_it_commits() {
    let f = Fixture::postgres().await;
    let (here, there) = (f.open().await, f.open().await);
    let (key, secret) = here.create("ci", "free", Role::User).await.unwrap();
    // `there` remembers the key for a second from now on.
    assert_eq!(
        there.authenticate(&secret).await.unwrap().unwrap().tier,
        "free"
    );
    let changes = KeyChanges {
        tier: Some("pro".to_owned()),
        ..KeyChanges::default()
    };
    here.update(&key.id, &changes).await.unwrap();
    let moved = within(Duration::from_millis(100), "the new tier there", || async {
        there.authenticate(&secret).await.unwrap().unwrap().tier == "pro"
    })
    .await;
    here.revoke(&key.id).await.unwrap();
    let revoked = within(
        Duration::from_millis(100),
        "the revocation there",
        || async {
            there
                .authenticate(&secret)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        },
    )
    .await;
    eprintln!(
        "another store saw the new tier after {moved:?} and the revocation after {revoked:?}"
    );
}

#[tokio::test]
async fn postgres_a_store_cut_off_serves_recent_keys_reports_it_and_recovers() {
    let f = Fixture::postgres().await;
    let direct = f.open().await;
    let mut url = reqwest::Url::parse(&f.url).unwrap();
    let upstream = format!("127.0.0.1:{}", url.port().unwrap())
        .parse()
        .unwrap();
    let proxy = Proxy::start(upstream).await;
    url.set_port(Some(proxy.addr.port())).unwrap();
    let cut_off = KeyStore::connect(url.as_str()).await.unwrap();
    let (seen, seen_secret) = direct.create("seen", "pro", Role::User).await.unwrap();
    let (_, unseen_secret) = direct.create("unseen", "pro", Role::User).await.unwrap();
    cut_off
        .set_setting("default_model", "m:latest")
        .await
        .unwrap();
    assert!(cut_off.authenticate(&seen_secret).await.unwrap().is_some());

    proxy.cut();
    let started = Instant::now();
    let served = cut_off.authenticate(&seen_secret).await.unwrap().unwrap();
    assert_eq!(served.id, seen.id);
    let unknown = cut_off.authenticate(&unseen_secret).await.unwrap_err();
    assert!(unknown.is_unavailable(), "{unknown}");
    // Once the store knows the database is away, a seen key is served without waiting.
    let quick = Instant::now();
    assert!(cut_off.authenticate(&seen_secret).await.unwrap().is_some());
    assert!(
        quick.elapsed() < Duration::from_millis(50),
        "{:?}",
        quick.elapsed()
    );
    assert_eq!(
        cut_off.setting("default_model").await.unwrap().as_deref(),
        Some("m:latest")
    );
    let health = cut_off.health().await.unwrap_err();
    assert!(health.contains("unreachable"), "{health}");
    assert!(cut_off.create("new", "pro", Role::User).await.is_err());
    eprintln!("while cut off for {:?}: {health}", started.elapsed());

    proxy.restore().await;
    let back = within(Duration::from_secs(15), "listening again", || async {
        cut_off
            .health()
            .await
            .is_ok_and(|detail| detail.contains("hearing key changes"))
    })
    .await;
    direct.revoke(&seen.id).await.unwrap();
    within(
        Duration::from_millis(100),
        "the revocation after recovery",
        || async {
            cut_off
                .authenticate(&seen_secret)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        },
    )
    .await;
    eprintln!("listening again {back:?} after the database returned");
}
