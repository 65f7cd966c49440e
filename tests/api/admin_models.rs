//! Installed models with Ollama's details, aliases, and the default model: selecting it,
//! what `"default"` and aliases then resolve to, bad selections, and persistence.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, chat, openai_error, spawn_app, spawn_with};

fn with_aliases() -> Options {
    Options {
        aliases: vec![
            ("gpt-4o", "default"),
            ("fast", "llama3.2"),
            ("gone", "mistral:7b"),
        ],
        ..Options::default()
    }
}

/// The model the fake Ollama was last asked to run.
fn last_model_run(app: &TestApp) -> String {
    let requests = app.ollama.chat_requests();
    requests.last().unwrap()["model"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn select(app: &TestApp, model: Value) -> reqwest::Response {
    app.admin(
        Method::PUT,
        "/admin/models/default",
        Some(json!({"model": model})),
    )
    .await
}

#[tokio::test]
async fn models_are_listed_with_details_capabilities_and_the_aliases() {
    let app = spawn_with(with_aliases()).await;
    let (status, list) = app.admin_get("/admin/models").await;
    assert_eq!(status, 200);
    let models = list["data"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "llama3.2:latest",
            "qwen3:8b",
            "llava:7b",
            "all-minilm:latest"
        ]
    );
    let llama = &models[0];
    assert_eq!(llama["family"], "llama");
    assert_eq!(llama["parameter_size"], "8.0B");
    assert_eq!(llama["quantization_level"], "Q4_K_M");
    assert_eq!(llama["context_length"], 8192);
    assert_eq!(llama["capabilities"], json!(["completion", "tools"]));
    assert_eq!(llama["default"], true);
    assert!(llama["size"].as_u64().unwrap() > 0);
    assert_eq!(
        models[1]["capabilities"],
        json!(["completion", "tools", "thinking"])
    );
    assert_eq!(models[1]["default"], false);

    let aliases = &list["aliases"];
    assert_eq!(
        aliases,
        &json!([
            {"alias": "fast", "target": "llama3.2", "resolves_to": "llama3.2:latest"},
            {"alias": "gone", "target": "mistral:7b", "resolves_to": null},
            {"alias": "gpt-4o", "target": "default", "resolves_to": "llama3.2:latest"}
        ])
    );
}

#[tokio::test]
async fn the_selected_default_model_is_what_default_and_aliases_resolve_to() {
    let app = spawn_with(with_aliases()).await;
    let (status, before) = app.admin_get("/admin/models/default").await;
    assert_eq!(status, 200);
    // With nothing selected, the newest installed model is the default.
    assert_eq!(
        before,
        json!({"model": "llama3.2:latest", "selected": null})
    );

    let response = select(&app, json!("qwen3:8b")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"model": "qwen3:8b", "selected": "qwen3:8b"}));
    let (_, after) = app.admin_get("/admin/models/default").await;
    assert_eq!(after, body);

    let key = app.key("pro").await;
    for requested in ["default", "gpt-4o"] {
        let answer = app.post_chat(&key, &chat(requested, "hi", false)).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(last_model_run(&app), "qwen3:8b", "{requested}");
    }
    let (_, list) = app.admin_get("/admin/models").await;
    assert_eq!(list["data"][1]["default"], true);
    assert_eq!(list["aliases"][2]["resolves_to"], "qwen3:8b");

    // An untagged name is stored with its tag, as Ollama would resolve it.
    let body: Value = select(&app, json!("llama3.2")).await.json().await.unwrap();
    assert_eq!(body["selected"], "llama3.2:latest");
}

#[tokio::test]
async fn selecting_a_model_that_is_not_installed_an_alias_or_nothing_is_refused() {
    let app = spawn_with(with_aliases()).await;
    let missing = openai_error(select(&app, json!("mistral:7b")).await, 404).await;
    assert_eq!(missing["code"], "model_not_found");
    assert_eq!(missing["param"], "model");
    let untagged = openai_error(select(&app, json!("qwen3")).await, 404).await;
    assert_eq!(untagged["code"], "model_not_found");
    for bad in [json!(""), json!("gpt-4o"), json!("default"), json!(7)] {
        let error = openai_error(select(&app, bad.clone()).await, 400).await;
        assert_eq!(error["param"], "model", "{bad}");
    }
    let extra = app
        .admin(
            Method::PUT,
            "/admin/models/default",
            Some(json!({"model": "qwen3:8b", "x": 1})),
        )
        .await;
    openai_error(extra, 400).await;
    let (_, unchanged) = app.admin_get("/admin/models/default").await;
    assert_eq!(unchanged["selected"], Value::Null);
}

#[tokio::test]
async fn the_default_model_survives_a_restart() {
    let app = spawn_app().await;
    assert_eq!(select(&app, json!("llava:7b")).await.status(), 200);
    let app = app.restart().await;
    let (_, after) = app.admin_get("/admin/models/default").await;
    assert_eq!(after, json!({"model": "llava:7b", "selected": "llava:7b"}));
    let key = app.key("free").await;
    assert_eq!(
        app.post_chat(&key, &chat("default", "hi", false))
            .await
            .status(),
        200
    );
    assert_eq!(last_model_run(&app), "llava:7b");
}

#[tokio::test]
async fn model_routes_answer_503_while_ollama_is_down() {
    let app = spawn_with(Options {
        ollama_down: true,
        ..Options::default()
    })
    .await;
    for path in ["/admin/models", "/admin/models/default"] {
        let response = app.admin(Method::GET, path, None).await;
        openai_error(response, 503).await;
    }
    openai_error(select(&app, json!("llama3.2")).await, 503).await;
}
