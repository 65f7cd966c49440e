//! Real answers checked against the OpenAPI document: every documented route's success and
//! error bodies, and each frame of a stream, must match their schema. A field the code returns
//! but the document does not describe fails too, so the document cannot fall behind.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::helpers::{Options, TestApp, chat, data_json, spawn_with, sse_frames};

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(doc, doc.pointer(pointer).unwrap_or(&Value::Null))
        }
        None => schema,
    }
}

/// The properties and required names of an object schema, `allOf` parts merged.
fn object_parts(doc: &Value, schema: &Value) -> (Map<String, Value>, Vec<String>, bool) {
    let schema = resolve(doc, schema);
    let mut properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let mut open = schema.get("additionalProperties").is_some();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r, o) = object_parts(doc, part);
        properties.extend(p);
        required.extend(r);
        open |= o;
    }
    (properties, required, open)
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// Checks `value` against `schema`; the error names the JSON path.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let errors: Vec<String> = options
                .iter()
                .filter_map(|s| check(doc, s, value, at).err())
                .collect();
            if errors.len() == options.len() {
                return Err(format!("{at}: matches no {key} option: {errors:?}"));
            }
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    let is_object_schema = types.contains(&"object") || schema.get("allOf").is_some();
    if let (Some(object), true) = (value.as_object(), is_object_schema) {
        let (properties, required, open) = object_parts(doc, schema);
        for name in required {
            if !object.contains_key(&name) {
                return Err(format!("{at}: required `{name}` is missing"));
            }
        }
        for (name, field) in object {
            match properties.get(name) {
                Some(property) => check(doc, property, field, &format!("{at}.{name}"))?,
                None if open => {}
                None => return Err(format!("{at}: `{name}` is not in the document")),
            }
        }
    }
    Ok(())
}

/// The JSON schema documented for `method path` answering `status`.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let operation = &doc["paths"][path][method];
    let response = resolve(doc, &operation["responses"][status.to_string()]);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} documents no JSON body for {status}"
    );
    schema
}

/// Sends the request and checks the answer against the document; returns the body.
async fn conforms(
    app: &TestApp,
    doc: &Value,
    (method, path, concrete): (Method, &str, &str),
    key: Option<&str>,
    body: Option<Value>,
) -> Value {
    let mut request = app.http.request(method.clone(), app.url(concrete));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let value: Value = response.json().await.unwrap();
    let method = method.as_str().to_lowercase();
    let schema = response_schema(doc, &method, path, status);
    if let Err(e) = check(doc, schema, &value, "$") {
        panic!("{method} {concrete} -> {status}: {e}\n{value}");
    }
    value
}

#[tokio::test]
async fn every_answer_matches_the_schema_the_document_gives_it() {
    let app = spawn_with(Options {
        aliases: vec![("gpt-4o", "default")],
        ..Options::default()
    })
    .await;
    let doc = serde_json::to_value(seadragon::api::openapi()).unwrap();
    let admin = Some(crate::helpers::ADMIN_KEY);
    let key = app.key("pro").await;
    let user = Some(key.as_str());

    let created = conforms(
        &app,
        &doc,
        (Method::POST, "/admin/keys", "/admin/keys"),
        admin,
        Some(json!({"name": "doc", "tier": "free", "expires_at": 4_102_444_800_i64})),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let one = format!("/admin/keys/{id}");
    let change = Some(json!({"tier": "pro"}));
    for (method, path, concrete, body) in [
        (Method::GET, "/admin/keys", "/admin/keys?tier=free", None),
        (Method::GET, "/admin/keys/{id}", one.as_str(), None),
        (Method::PATCH, "/admin/keys/{id}", one.as_str(), change),
        (Method::GET, "/admin/tiers", "/admin/tiers", None),
        (Method::GET, "/admin/models", "/admin/models", None),
        (
            Method::GET,
            "/admin/models/default",
            "/admin/models/default",
            None,
        ),
        (
            Method::PUT,
            "/admin/models/default",
            "/admin/models/default",
            Some(json!({"model": "qwen3:8b"})),
        ),
        (
            Method::DELETE,
            "/admin/queue/{tier}",
            "/admin/queue/free",
            None,
        ),
        (Method::DELETE, "/admin/queue", "/admin/queue", None),
        (Method::GET, "/v1/models", "/v1/models", None),
        (Method::GET, "/v1/models/{id}", "/v1/models/gpt-4o", None),
        (Method::GET, "/api/health", "/api/health", None),
    ] {
        let key = if path.starts_with("/admin") {
            admin
        } else {
            user
        };
        conforms(&app, &doc, (method, path, concrete), key, body).await;
    }

    // Answers with usage, tool calls and reasoning, so the optional parts are checked too.
    let tool = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let mut bodies = vec![
        chat("llama3.2", "hi", false),
        chat("qwen3:8b", "#think about it", false),
    ];
    bodies.push(json!({"model": "llama3.2", "messages": [{"role": "user", "content": "#tool"}], "tools": tool}));
    for body in bodies {
        let post = (Method::POST, "/v1/chat/completions", "/v1/chat/completions");
        conforms(&app, &doc, post, user, Some(body)).await;
    }
    let chunk_schema = json!({"$ref": "#/components/schemas/ChatCompletionChunk"});
    for prompt in ["#think it over", "#tool"] {
        let mut body = chat("qwen3:8b", prompt, true);
        body["stream_options"] = json!({"include_usage": true});
        body["tools"] = tool.clone();
        let frames = sse_frames(app.post_chat(&key, &body).await).await;
        for (i, frame) in data_json(&frames).iter().enumerate() {
            check(&doc, &chunk_schema, frame, &format!("chunk {i}")).unwrap();
        }
    }

    // With a running job the queue view has every part filled in; then the stats.
    let before = app.ollama.started().len();
    let busy = {
        let (url, key, http) = (
            app.url("/v1/chat/completions"),
            key.clone(),
            app.http.clone(),
        );
        let body = chat("llama3.2", "#hold", false);
        tokio::spawn(async move { http.post(url).bearer_auth(key).json(&body).send().await })
    };
    app.ollama.wait_started(before + 1).await;
    let queue = (Method::GET, "/admin/queue", "/admin/queue");
    // The board learns of the start from the job's events: poll until it shows the job.
    let mut view = conforms(&app, &doc, queue.clone(), admin, None).await;
    for _ in 0..2000 {
        if view["running"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        view = conforms(&app, &doc, queue.clone(), admin, None).await;
    }
    app.ollama.release();
    busy.await.unwrap().unwrap();
    conforms(
        &app,
        &doc,
        (Method::DELETE, "/admin/keys/{id}", &one),
        admin,
        None,
    )
    .await;
    conforms(
        &app,
        &doc,
        (Method::GET, "/admin/stats", "/admin/stats"),
        admin,
        None,
    )
    .await;

    // Errors: each documented status with the shared error schema.
    for (method, path, concrete, key, body) in [
        (Method::GET, "/admin/keys", "/admin/keys", None, None),
        (Method::GET, "/admin/keys", "/admin/keys", user, None),
        (
            Method::GET,
            "/admin/keys/{id}",
            "/admin/keys/42",
            admin,
            None,
        ),
        (
            Method::DELETE,
            "/admin/keys/{id}",
            one.as_str(),
            admin,
            None,
        ),
        (
            Method::DELETE,
            "/admin/queue/{tier}",
            "/admin/queue/gold",
            admin,
            None,
        ),
        (
            Method::PUT,
            "/admin/models/default",
            "/admin/models/default",
            admin,
            Some(json!({"model": "nope"})),
        ),
        (
            Method::POST,
            "/v1/chat/completions",
            "/v1/chat/completions",
            user,
            Some(json!({"model": "x"})),
        ),
        (
            Method::GET,
            "/v1/models/{id}",
            "/v1/models/nope",
            user,
            None,
        ),
    ] {
        conforms(&app, &doc, (method, path, concrete), key, body).await;
    }
}

/// The IDE routes: text completions (whole and streamed), embeddings, and their errors.
#[tokio::test]
async fn the_completion_and_embedding_answers_match_the_document() {
    let app = spawn_with(Options::default()).await;
    let doc = serde_json::to_value(seadragon::api::openapi()).unwrap();
    let key = app.key("pro").await;
    let user = Some(key.as_str());
    let completions = (Method::POST, "/v1/completions", "/v1/completions");
    let embeddings = (Method::POST, "/v1/embeddings", "/v1/embeddings");
    let prompt = json!({"model": "llama3.2", "prompt": "def f(", "suffix": ")", "max_tokens": 8});
    conforms(&app, &doc, completions.clone(), user, Some(prompt)).await;
    for body in [
        json!({"model": "all-minilm", "input": ["a", "b"]}),
        json!({"model": "all-minilm", "input": "a", "encoding_format": "base64"}),
    ] {
        conforms(&app, &doc, embeddings.clone(), user, Some(body)).await;
    }
    let stream = json!({"model": "llama3.2", "prompt": "x", "stream": true,
                        "stream_options": {"include_usage": true}});
    let response = app
        .http
        .post(app.url("/v1/completions"))
        .bearer_auth(&key)
        .json(&stream)
        .send()
        .await
        .unwrap();
    let schema = response_schema(&doc, "post", "/v1/completions", 200);
    for (i, frame) in data_json(&sse_frames(response).await).iter().enumerate() {
        check(&doc, schema, frame, &format!("chunk {i}")).unwrap();
    }
    conforms(
        &app,
        &doc,
        completions,
        user,
        Some(json!({"model": "llama3.2", "echo": true})),
    )
    .await;
    conforms(
        &app,
        &doc,
        embeddings.clone(),
        user,
        Some(json!({"model": "all-minilm", "input": []})),
    )
    .await;
    conforms(
        &app,
        &doc,
        embeddings,
        user,
        Some(json!({"model": "nope", "input": "a"})),
    )
    .await;
}

#[test]
fn the_checker_refuses_undocumented_fields_wrong_types_and_missing_required_ones() {
    let doc = serde_json::to_value(seadragon::api::openapi()).unwrap();
    let tier = json!({"$ref": "#/components/schemas/TierView"});
    let good = json!({"name": "pro", "priority": 2, "requests_per_minute": 600,
        "max_concurrent": 16, "max_queued": 1000, "max_wait_secs": 600, "starvation_secs": 30.0});
    check(&doc, &tier, &good, "$").unwrap();
    let mut extra = good.clone();
    extra["colour"] = json!("red");
    assert!(check(&doc, &tier, &extra, "$").is_err());
    let mut wrong = good.clone();
    wrong["priority"] = json!("high");
    assert!(check(&doc, &tier, &wrong, "$").is_err());
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("name");
    assert!(check(&doc, &tier, &missing, "$").is_err());
}
