//! Gateways on different machines sharing one PostgreSQL key store, as real `seadragon gateway`
//! processes on one database: a key created through one works through the other, and a tier
//! change, a revocation and the default model set through one apply at the other at once.

use std::time::{Duration, Instant};

use fake_ollama::{FakeConfig, FakeOllama};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::helpers::ADMIN_KEY;
use crate::postgres::database;
use crate::process::Process;

/// The status and `x-ratelimit-limit-requests` (the key's tier rate) of `GET /v1/models`.
async fn models(c: &Cluster, gateway: &Process, key: &str) -> (u16, Option<u64>) {
    let response = c
        .http
        .get(format!("{}/v1/models", gateway.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let limit = response
        .headers()
        .get("x-ratelimit-limit-requests")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (response.status().as_u16(), limit)
}

/// Sends an admin request and returns the status and JSON body.
async fn admin(
    c: &Cluster,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = c.http.request(method, url).bearer_auth(ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls the other gateway until `done` holds for its answer; fails after `limit`. Returns the
/// time from `since` (the change's acknowledgement) to the first answer that showed it.
async fn seen_within(
    c: &Cluster,
    gateway: &Process,
    key: &str,
    limit: Duration,
    done: impl Fn((u16, Option<u64>)) -> bool,
) -> Duration {
    let since = Instant::now();
    loop {
        let answer = models(c, gateway, key).await;
        if done(answer) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "the other gateway still answers {answer:?} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn two_gateways_on_one_postgres_database_share_keys_revocations_tiers_and_the_default() {
    let db = database().await;
    let c = Cluster::with_database(&db.url);
    let fake = FakeOllama::start(FakeConfig::default()).await;
    let _w = c.worker(&fake).await;
    let one = c.gateway("3600").await;
    let other = c.gateway("3600").await;
    c.wait_ready(&one).await;
    c.wait_ready(&other).await;
    for g in [&one, &other] {
        let (_, health) = admin(
            &c,
            reqwest::Method::GET,
            format!("{}/api/health", g.base),
            None,
        )
        .await;
        let detail = health["key_store"]["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("postgres"), "{health}");
    }

    // Created through one gateway, used through the other (which then remembers it).
    let (status, created) = admin(
        &c,
        reqwest::Method::POST,
        format!("{}/admin/keys", one.base),
        Some(json!({"name": "shared", "tier": "pro"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    assert_eq!(models(&c, &other, key).await, (200, Some(600)));

    // A new tier (enterprise: 6,000 requests a minute) applies there at once.
    let (status, _) = admin(
        &c,
        reqwest::Method::PATCH,
        format!("{}/admin/keys/{id}", one.base),
        Some(json!({"tier": "enterprise"})),
    )
    .await;
    assert_eq!(status, 200);
    let moved = seen_within(&c, &other, key, Duration::from_millis(100), |(s, limit)| {
        s == 200 && limit == Some(6000)
    })
    .await;

    // Revoked through one gateway, refused by the other within 100 ms.
    let (status, _) = admin(
        &c,
        reqwest::Method::DELETE,
        format!("{}/admin/keys/{id}", one.base),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let revoked = seen_within(&c, &other, key, Duration::from_millis(100), |(s, _)| {
        s == 401
    })
    .await;
    eprintln!(
        "the other gateway had the new tier after {moved:?}, refused the key after {revoked:?}"
    );

    // The default model set through one gateway is the other's default.
    let (status, body) = admin(
        &c,
        reqwest::Method::PUT,
        format!("{}/admin/models/default", one.base),
        Some(json!({"model": "qwen3:8b"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, there) = admin(
        &c,
        reqwest::Method::GET,
        format!("{}/admin/models/default", other.base),
        None,
    )
    .await;
    assert_eq!(there["selected"], "qwen3:8b", "{there}");
    let user = c.key(&other, "pro").await;
    let answer: Value = c
        .http
        .post(format!("{}/v1/chat/completions", other.base))
        .bearer_auth(&user)
        .json(&crate::helpers::chat("default", "hi", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{answer}");
    let asked = fake.chat_requests();
    assert_eq!(asked.last().unwrap()["model"], "qwen3:8b", "{asked:?}");
}
