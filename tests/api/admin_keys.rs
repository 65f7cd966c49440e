//! Key administration beyond create/list/revoke: reading one key, changing its name and tier,
//! filters, expiry, bad input, and persistence across a restart.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use seadragon::auth::{KeyStore, Role};
use serde_json::{Value, json};

use crate::helpers::{TestApp, chat, openai_error, spawn_app};

fn unix_now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

/// Creates a key through the API; its JSON, secret included.
async fn create(app: &TestApp, body: Value) -> Value {
    let response = app.admin(Method::POST, "/admin/keys", Some(body)).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_key_can_be_read_renamed_and_moved_to_another_tier() {
    let app = spawn_app().await;
    let created = create(&app, json!({"name": "ci", "tier": "free"})).await;
    let id = created["id"].as_str().unwrap();
    let (status, one) = app.admin_get(&format!("/admin/keys/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["name"], "ci");
    assert_eq!(one["expires_at"], Value::Null);
    assert!(one.get("key").is_none(), "secret shown again: {one}");

    let path = format!("/admin/keys/{id}");
    let patch = |body: Value| app.admin(Method::PATCH, &path, Some(body));
    let renamed: Value = patch(json!({"name": "  nightly ci "}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (renamed["name"].as_str(), renamed["tier"].as_str()),
        (Some("nightly ci"), Some("free"))
    );
    let moved = patch(json!({"tier": "enterprise"})).await;
    assert_eq!(moved.status(), 200);
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(
        (moved["name"].as_str(), moved["tier"].as_str()),
        (Some("nightly ci"), Some("enterprise"))
    );

    let secret = created["key"].as_str().unwrap();
    let answer = app.post_chat(secret, &chat("llama3.2", "hi", false)).await;
    assert_eq!(answer.status(), 200, "the moved key no longer works");
}

#[tokio::test]
async fn keys_are_listed_by_tier_and_by_revocation() {
    let app = spawn_app().await;
    let free = create(&app, json!({"name": "a", "tier": "free"})).await;
    let pro = create(&app, json!({"name": "b", "tier": "pro"})).await;
    let pro_id = pro["id"].as_str().unwrap();
    let revoked = app
        .admin(Method::DELETE, &format!("/admin/keys/{pro_id}"), None)
        .await;
    assert_eq!(revoked.status(), 200);
    let ids = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, by_tier) = app.admin_get("/admin/keys?tier=free").await;
    assert_eq!(ids(&by_tier), [free["id"].as_str().unwrap()]);
    let (_, gone) = app.admin_get("/admin/keys?revoked=true").await;
    assert_eq!(ids(&gone), [pro_id]);
    let (_, live) = app.admin_get("/admin/keys?revoked=false&tier=pro").await;
    assert!(ids(&live).is_empty(), "{live}");
    let (_, all) = app.admin_get("/admin/keys").await;
    assert_eq!(ids(&all).len(), 2);
}

#[tokio::test]
async fn a_key_expires_at_its_time_and_is_refused_with_401() {
    let app = spawn_app().await;
    let later = unix_now() + 3600;
    let created = create(
        &app,
        json!({"name": "temp", "tier": "pro", "expires_at": later}),
    )
    .await;
    assert_eq!(created["expires_at"], later);
    let secret = created["key"].as_str().unwrap();
    assert_eq!(
        app.post_chat(secret, &chat("llama3.2", "hi", false))
            .await
            .status(),
        200
    );

    // The API refuses past expiry times, so put an already expired key in the store directly.
    let store = KeyStore::connect(&app.database_url).await.unwrap();
    let (_, expired) = store
        .create_expiring("old", "pro", Role::Admin, Some(unix_now() - 1))
        .await
        .unwrap();
    let refused = app
        .post_chat(&expired, &chat("llama3.2", "hi", false))
        .await;
    let error = openai_error(refused, 401).await;
    assert_eq!(error["code"], "invalid_api_key");
    assert!(
        error["message"].as_str().unwrap().contains("expired"),
        "{error}"
    );
    let admin = app
        .http
        .get(app.url("/admin/keys"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    openai_error(admin, 401).await;
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_400_and_404_on_every_key_route() {
    let app = spawn_app().await;
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"name": "x"}));
        let malformed = app
            .admin(method.clone(), "/admin/keys/42", body.clone())
            .await;
        assert_eq!(
            openai_error(malformed, 400).await["param"],
            "id",
            "{method}"
        );
        let unknown = app
            .admin(method.clone(), "/admin/keys/key_0000000000000000", body)
            .await;
        assert_eq!(
            openai_error(unknown, 404).await["code"],
            "not_found",
            "{method}"
        );
    }
}

#[tokio::test]
async fn bad_changes_filters_and_expiry_times_get_precise_400s_and_revoked_keys_409() {
    let app = spawn_app().await;
    let created = create(&app, json!({"name": "x", "tier": "free"})).await;
    let path = format!("/admin/keys/{}", created["id"].as_str().unwrap());
    for (body, param) in [
        (json!({}), None),
        (json!({"name": " "}), Some("name")),
        (json!({"name": "y".repeat(201)}), Some("name")),
        (json!({"tier": "platinum"}), Some("tier")),
        (json!({"tier": 3}), Some("tier")),
        (json!({"role": "admin"}), None),
    ] {
        let response = app.admin(Method::PATCH, &path, Some(body.clone())).await;
        let error = openai_error(response, 400).await;
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{body}");
        }
    }
    let past = json!({"name": "x", "tier": "free", "expires_at": unix_now() - 10});
    let response = app.admin(Method::POST, "/admin/keys", Some(past)).await;
    assert_eq!(openai_error(response, 400).await["param"], "expires_at");
    for query in ["revoked=maybe", "colour=blue"] {
        let response = app
            .admin(Method::GET, &format!("/admin/keys?{query}"), None)
            .await;
        openai_error(response, 400).await;
    }

    assert_eq!(app.admin(Method::DELETE, &path, None).await.status(), 200);
    let change = app
        .admin(Method::PATCH, &path, Some(json!({"name": "z"})))
        .await;
    assert_eq!(openai_error(change, 409).await["code"], "conflict");
    let again = app.admin(Method::DELETE, &path, None).await;
    openai_error(again, 409).await;
}

#[tokio::test]
async fn key_changes_and_revocations_survive_a_restart() {
    let app = spawn_app().await;
    let kept = create(&app, json!({"name": "kept", "tier": "free"})).await;
    let gone = create(&app, json!({"name": "gone", "tier": "free"})).await;
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    let moved = app
        .admin(
            Method::PATCH,
            &format!("/admin/keys/{kept_id}"),
            Some(json!({"tier": "pro", "name": "kept2"})),
        )
        .await;
    assert_eq!(moved.status(), 200);
    let gone_path = format!("/admin/keys/{}", gone["id"].as_str().unwrap());
    assert_eq!(
        app.admin(Method::DELETE, &gone_path, None).await.status(),
        200
    );

    let app = app.restart().await;
    let (_, after) = app.admin_get(&format!("/admin/keys/{kept_id}")).await;
    assert_eq!(
        (after["name"].as_str(), after["tier"].as_str()),
        (Some("kept2"), Some("pro"))
    );
    let ok = app
        .post_chat(
            kept["key"].as_str().unwrap(),
            &chat("llama3.2", "hi", false),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let refused = app
        .post_chat(
            gone["key"].as_str().unwrap(),
            &chat("llama3.2", "hi", false),
        )
        .await;
    openai_error(refused, 401).await;
}
