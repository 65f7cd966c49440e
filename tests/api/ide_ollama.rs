//! Ollama-native clients pointed at the gateway, replaying what each sends: Copilot's
//! discovery (version, tags, show), Roo's and Continue's model checks, Open WebUI's
//! connection, Zed's edit prediction, Continue's FIM, Codex's pull; keys in the path for the
//! clients that cannot send a header; Ollama's error shape throughout.

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::ide_openai::ide_app;

/// NDJSON lines of a streamed native answer.
pub async fn ndjson(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    assert!(text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Asserts `{"error": "<message>"}` with `status`; returns the message.
pub async fn ollama_error(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn copilot_discovers_models_through_a_path_key() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let base = format!("/k/{key}");
    // R10a: no key at all for the version.
    let version: Value = app
        .http
        .get(app.url("/api/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["version"], "0.33.0");
    // R10b: the model list needs the key, which Copilot can only put in the URL.
    ollama_error(
        app.http.get(app.url("/api/tags")).send().await.unwrap(),
        401,
    )
    .await;
    let tags: Value = app
        .http
        .get(app.url(&format!("{base}/api/tags")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let coder = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "qwen2.5-coder:1.5b")
        .unwrap();
    for field in ["name", "modified_at", "digest"] {
        assert!(
            coder[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {coder}"
        );
    }
    assert!(coder["size"].as_u64().unwrap() > 0);
    assert!(
        coder["details"]["family"].is_string() && coder["details"]["parameter_size"].is_string()
    );
    // R10c: capabilities and the context length under the architecture.
    let response = post(
        &app,
        &format!("{base}/api/show"),
        &json!({"model": "qwen2.5-coder:1.5b"}),
    )
    .await;
    let show: Value = response.json().await.unwrap();
    assert!(
        show["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("tools"))
    );
    assert_eq!(show["model_info"]["general.architecture"], "qwen2");
    assert_eq!(show["model_info"]["qwen2.context_length"], 32768);
    // R11: then chat over /v1 with an empty bearer, the key still in the path.
    let body = json!({"model": "qwen2.5-coder:1.5b", "stream": true, "n": 1,
        "messages": [{"role": "user", "content": "hello"}], "stream_options": {"include_usage": true}});
    let response = app
        .http
        .post(app.url(&format!("{base}/v1/chat/completions")))
        .header("authorization", "Bearer ")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A key in the header wins over the path.
    let response = app
        .http
        .get(app.url(&format!("{base}/api/tags")))
        .bearer_auth("sk-sd-wrong")
        .send()
        .await
        .unwrap();
    ollama_error(response, 401).await;
    let response = app
        .http
        .get(app.url("/k/sk-sd-wrong/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn continue_and_roo_read_templates_and_capabilities_with_either_name_key() {
    let app = ide_app().await;
    let key = app.key("free").await;
    // R15a: Continue's legacy `name`.
    let response = app
        .http
        .post(app.url("/api/show"))
        .bearer_auth(&key)
        .json(&json!({"name": "qwen2.5-coder:1.5b"}))
        .send()
        .await
        .unwrap();
    let show: Value = response.json().await.unwrap();
    assert!(show["template"].as_str().unwrap().contains(".Suffix"));
    assert!(show["parameters"].is_string());
    // R16: an untagged name, as Open WebUI and Roo send.
    let response = app
        .http
        .post(app.url("/api/show"))
        .bearer_auth(&key)
        .json(&json!({"model": "llama3.2"}))
        .send()
        .await
        .unwrap();
    let show: Value = response.json().await.unwrap();
    assert!(show["details"].is_object());
    assert!(
        show["model_info"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("context_length"))
    );
    let response = app
        .http
        .post(app.url("/api/show"))
        .bearer_auth(&key)
        .json(&json!({"model": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ollama_error(response, 404).await,
        "model 'nope:latest' not found"
    );
    let response = app
        .http
        .post(app.url("/api/show"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ollama_error(response, 400).await, "model is required");
}

#[tokio::test]
async fn continue_fim_streams_ndjson_and_zed_edit_prediction_gets_one_object() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    // R15b: stream omitted means streaming; the suffix keeps the model's FIM template.
    let body = json!({"model": "qwen2.5-coder:1.5b", "prompt": "def add(a, b):\n    return ",
        "suffix": "\n\nprint(add(1, 2))\n", "keep_alive": 1800,
        "options": {"temperature": 0.01, "num_predict": 4096, "stop": ["<|endoftext|>", "```"], "num_ctx": 8192}});
    let lines = ndjson(
        app.http
            .post(app.url("/api/generate"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let text: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    assert_eq!(text, "a + b");
    let last = lines.last().unwrap();
    assert_eq!(
        (last["done"].clone(), last["done_reason"].clone()),
        (json!(true), json!("stop"))
    );
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l["done"] == false && l["model"] == "qwen2.5-coder:1.5b")
    );
    assert_eq!(
        app.ollama.generate_requests()[0]["options"]["num_ctx"],
        8192
    );
    // R14: Zed sends no header, so its URL carries the key; one JSON object.
    let body = json!({"model": "qwen2.5-coder:1.5b", "raw": true, "stream": false,
        "prompt": "<|fim_prefix|>fn add(a: i32, b: i32) -> i32 {\n    <|fim_suffix|>\n}\n<|fim_middle|>",
        "options": {"num_predict": 64, "temperature": 0.2, "stop": ["<|endoftext|>", "<|fim_prefix|>"]}});
    let response = post(&app, &format!("/k/{key}/api/generate"), &body).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        (answer["response"].clone(), answer["done"].clone()),
        (json!("a + b"), json!(true))
    );
    assert_eq!(app.ollama.generate_requests()[1]["raw"], true);
}

#[tokio::test]
async fn open_webui_chats_in_ndjson_and_sees_loaded_models() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let body = json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let response = app
        .http
        .post(app.url("/api/chat"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let lines = ndjson(response).await;
    let text: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from the fake Ollama.");
    let last = lines.last().unwrap();
    assert_eq!(last["done_reason"], "stop");
    assert!(
        last["eval_count"].as_u64().unwrap() > 0 && last["total_duration"].as_u64().unwrap() > 0
    );
    assert!(
        lines
            .iter()
            .all(|l| l["model"] == "llama3.2" && l["message"]["role"] == "assistant")
    );
    let ps: Value = app
        .http
        .get(app.url("/api/ps"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let loaded = &ps["models"][0];
    assert_eq!(loaded["name"], "llama3.2:latest");
    assert!(loaded["expires_at"].is_string());
    // Tool calls: whole, arguments as an object, and Ollama's "stop".
    let body = json!({"model": "llama3.2", "stream": false, "messages": [{"role": "user", "content": "#tool weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let answer: Value = app
        .http
        .post(app.url("/api/chat"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["message"]["tool_calls"][0]["function"]["arguments"]["city"],
        "Tokyo"
    );
    assert_eq!(answer["done_reason"], "stop");
    // Embeddings through the same queue.
    let body = json!({"model": "nomic-embed-text", "input": ["a", "b c"]});
    let answer: Value = app
        .http
        .post(app.url("/api/embed"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(answer["prompt_eval_count"], 3);
}

/// Clients preload a model with an empty prompt; Ollama answers `done_reason: "load"`.
#[tokio::test]
async fn an_empty_prompt_only_loads_the_model() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let body = json!({"model": "qwen2.5-coder:1.5b", "stream": false});
    let response = app
        .http
        .post(app.url("/api/generate"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        (answer["response"].as_str(), answer["done_reason"].as_str()),
        (Some(""), Some("load"))
    );
}

/// A native stream is a job like any other: an editor that hangs up cancels its generation.
#[tokio::test]
async fn hanging_up_a_native_stream_stops_the_generation() {
    let app = ide_app().await;
    let key = app.key("pro").await;
    let body = json!({"model": "llama3.2", "messages": [{"role": "user", "content": "#hold"}]});
    let mut response = app
        .http
        .post(app.url("/api/chat"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"done\":false"));
    drop(response);
    app.ollama.wait_cancelled(1).await;
    assert_eq!(app.ollama.cancelled(), ["#hold"]);
}
