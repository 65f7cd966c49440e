//! Admin key management and key-based access.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, chat, openai_error, spawn_app};

#[tokio::test]
async fn a_created_key_chats_is_listed_without_secret_and_is_refused_once_revoked() {
    let app = spawn_app().await;
    let created = app
        .http
        .post(app.url("/admin/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "ci bot", "tier": "free"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk-sd-"));
    assert_eq!(created["tier"], "free");
    assert_eq!(created["name"], "ci bot");
    assert!(created["created_at"].as_i64().unwrap() > 1_700_000_000);

    let ok = app.post_chat(&secret, &chat("llama3.2", "hi", false)).await;
    assert_eq!(ok.status(), 200);

    let list: Value = app
        .http
        .get(app.url("/admin/keys"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = &list["data"][0];
    assert_eq!(listed["id"], id.as_str());
    assert!(
        listed.get("key").is_none(),
        "secret leaked in the list: {list}"
    );
    assert!(!list.to_string().contains(&secret));

    let revoke = app
        .http
        .delete(app.url(&format!("/admin/keys/{id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let refused = app.post_chat(&secret, &chat("llama3.2", "hi", false)).await;
    assert_eq!(openai_error(refused, 401).await["code"], "invalid_api_key");

    let again = app
        .http
        .delete(app.url(&format!("/admin/keys/{id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    openai_error(again, 409).await;
    let unknown = app
        .http
        .delete(app.url("/admin/keys/key_0000000000000000"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    openai_error(unknown, 404).await;
}

#[tokio::test]
async fn a_user_key_is_forbidden_on_admin_routes() {
    let app = spawn_app().await;
    let user = app.key("enterprise").await;
    let list = app
        .http
        .get(app.url("/admin/keys"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(
        openai_error(list, 403).await["code"],
        "insufficient_permissions"
    );
    let create = app
        .http
        .post(app.url("/admin/keys"))
        .bearer_auth(&user)
        .json(&json!({"name": "x", "tier": "enterprise"}))
        .send()
        .await
        .unwrap();
    openai_error(create, 403).await;
    let none = app.http.get(app.url("/admin/keys")).send().await.unwrap();
    openai_error(none, 401).await;
}

#[tokio::test]
async fn unknown_tiers_empty_names_and_bad_bodies_are_400() {
    let app = spawn_app().await;
    for (body, param) in [
        (json!({"name": "x", "tier": "platinum"}), "tier"),
        (json!({"name": "  ", "tier": "free"}), "name"),
        (json!({"name": "x"}), "."),
        (json!({"name": "x", "tier": "free", "role": "root"}), "role"),
    ] {
        let response = app
            .http
            .post(app.url("/admin/keys"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = openai_error(response, 400).await;
        if param != "." {
            assert_eq!(error["param"], param, "{body}");
        }
    }
}
