//! The OpenAPI document: the committed file matches the code, it is served with Swagger UI, and
//! walking its paths proves every admin route refuses missing and non-admin keys.

use std::path::Path;

use serde_json::Value;

use crate::helpers::spawn_app;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// The document as the code produces it, in the committed file's format.
fn generated() -> String {
    let mut json = seadragon::api::openapi().to_pretty_json().unwrap();
    json.push('\n');
    json
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = generated();
    // `var_os`, not `var`: the crate forbids `std::env::var` outside the config module.
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(Path::new(COMMITTED).parent().unwrap()).unwrap();
        std::fs::write(COMMITTED, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit the result"
    );
}

#[test]
fn the_document_pins_its_version_and_declares_the_bearer_scheme() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(doc["info"]["version"], "1");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// Every `(method, path)` of the document, with the operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    all
}

#[test]
fn every_route_but_health_requires_the_bearer_key_and_documents_its_errors() {
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    for (method, path, operation) in operations(&doc) {
        // Ollama clients probe the version before anything else, without a key.
        let public = path == "/livez" || path == "/api/health" || path == "/api/version";
        let security = &operation["security"];
        assert_eq!(
            security.is_array(),
            !public,
            "{method} {path}: security {security}"
        );
        if public {
            continue;
        }
        assert_eq!(
            security[0]["bearer"],
            Value::Array(Vec::new()),
            "{method} {path}"
        );
        let responses = operation["responses"].as_object().unwrap();
        assert!(responses.contains_key("401"), "{method} {path} lacks 401");
        if path.starts_with("/admin/") || path == "/metrics" {
            assert!(responses.contains_key("403"), "{method} {path} lacks 403");
        }
        assert!(
            operation["operationId"].is_string(),
            "{method} {path} has no operationId"
        );
    }
}

#[tokio::test]
async fn every_admin_route_in_the_document_answers_401_without_a_key_and_403_to_a_user_key() {
    let app = spawn_app().await;
    let user = app.key("enterprise").await;
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_routes: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/admin") || *path == "/metrics")
        .collect();
    assert!(admin_routes.len() >= 3, "{admin_routes:?}");
    for (method, path, _) in admin_routes {
        // Well-formed values, so that only the key can be the reason for a refusal.
        let url = app.url(
            &path
                .replace("{id}", "key_0000000000000000")
                .replace("{tier}", "free"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        for (key, status) in [(None, 401), (Some(user.as_str()), 403)] {
            let mut request = app.http.request(method.clone(), &url);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.json(&serde_json::json!({})).send().await.unwrap();
            let error = crate::helpers::openai_error(response, status).await;
            assert!(error["message"].is_string(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_swagger_ui_is_served_offline() {
    let app = spawn_app().await;
    let served: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(served, generated);

    let page = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let init = app
        .http
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    // Nothing on the page may come from another host.
    assert!(!html.contains("https://"), "{html}");
}
