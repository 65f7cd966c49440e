//! The fake Ollama's endpoints beyond chat, as IDE clients reach them through the gateway:
//! `/api/generate` (raw prompts and fill-in-the-middle with `suffix`), `/api/embed` and
//! `/api/ps`, with Ollama's shapes and errors (reference: Ollama's `api/types.go`).
//!
//! Generation reuses the chat scenarios: the prompt plays the last user message, so `#hold`,
//! `#crash`, `#long 50` ... work here too. What the model "sees" depends on the template,
//! which is the point of the raw/suffix rules: a coder model (capability `insert`) given a
//! well-formed fill-in-the-middle prompt answers the middle (`a + b`); the same prompt
//! wrapped in a chat template gets a chatty answer that leaks the template's tokens.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::chat::acquire_slot;
use crate::config::{FakeModel, MODIFIED_AT};
use crate::generation::{Event, Generation};
use crate::objects::{ChatObject, Message};
use crate::script::{ChatMessage, ChatRequest, Step, prepare};
use crate::state::Shared;
use crate::wire::{
    NDJSON, Refusal, bad_request, decode, json_body, ndjson, parse_body, respond, with_tag,
};

const FIM_ANSWER: &[&str] = &["a", " +", " b"];
/// What a chat template does to a prompt it wraps.
const CHAT_LEAK: &[&str] = &["<|im_start|>", "assistant", " Sure!"];

/// A coder model's template: fill-in-the-middle when a suffix is given, chat otherwise.
pub(crate) fn template(model: &FakeModel) -> &'static str {
    if model.has("insert") {
        "{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>\
         {{- else }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n{{ end }}"
    } else {
        "{{ .Prompt }}"
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GenerateRequest {
    model: Option<String>,
    prompt: String,
    suffix: Option<String>,
    raw: bool,
    stream: Option<bool>,
    think: Option<Value>,
    format: Option<Value>,
    keep_alive: Option<Value>,
    options: Map<String, Value>,
}

pub(crate) async fn generate(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let arrived = Instant::now();
    let parsed = parse_body(&body)?;
    shared.note(|log| &mut log.generate_requests, parsed.clone());
    let request: GenerateRequest = decode(&parsed)?;
    let name = request.model.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "model '' not found".to_owned(),
        ));
    }
    let model = shared
        .model(&name)
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("model '{name}' not found")))?;
    if !model.has("completion") {
        return Err(bad_request(format!("\"{name}\" does not support generate")));
    }
    let rendered = match (&request.suffix, request.raw) {
        (_, true) => request.prompt.clone(),
        (Some(suffix), false) if model.has("insert") => format!(
            "<|fim_prefix|>{}<|fim_suffix|>{suffix}<|fim_middle|>",
            request.prompt
        ),
        (Some(_), false) => return Err(bad_request(format!("{name} does not support insert"))),
        (None, false) if model.has("insert") => format!(
            "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
            request.prompt
        ),
        (None, false) => request.prompt.clone(),
    };
    let fim = rendered.starts_with("<|fim_prefix|>") && rendered.ends_with("<|fim_middle|>");
    let leaks = rendered.starts_with("<|im_start|>");
    let raw = request.raw;
    // An empty prompt only loads the model, as `messages: []` does for chat.
    let messages = if request.prompt.is_empty() && request.suffix.is_none() {
        Vec::new()
    } else {
        vec![ChatMessage {
            role: "user".to_owned(),
            content: Some(request.prompt),
        }]
    };
    let chat = ChatRequest {
        model: request.model,
        messages,
        tools: Vec::new(),
        stream: request.stream,
        think: request.think,
        format: request.format,
        keep_alive: request.keep_alive,
        options: request.options,
    };
    let mut job = prepare(&shared, chat)?;
    let answer = match (fim, leaks) {
        (true, _) => Some(FIM_ANSWER),
        (false, true) => Some(CHAT_LEAK),
        (false, false) => None,
    };
    if let Some(answer) = answer {
        job.steps = answer
            .iter()
            .map(|t| Step::Emit(Message::new(t, "", Vec::new())))
            .collect::<VecDeque<_>>();
    }
    let slot = match acquire_slot(&shared).await {
        Ok(slot) => slot,
        Err(response) => return Ok(response),
    };
    if let Some(reason) = job.load_only {
        let reply = ChatObject {
            done: true,
            done_reason: Some(reason),
            ..ChatObject::new(&job.model, Message::new("", "", Vec::new()))
        };
        let reply = as_generate(&serde_json::to_value(&reply).unwrap_or_default(), true);
        return Ok(json_body(StatusCode::OK, &reply));
    }
    let streaming = job.stream;
    let mut generation = Generation::start(shared, job, slot, arrived);
    if !streaming {
        let mut whole = String::new();
        while let Some(event) = generation.next().await {
            match event {
                Event::Object(object) => {
                    whole.push_str(&object.message.content);
                    if object.done {
                        let mut value =
                            as_generate(&serde_json::to_value(&object).unwrap_or_default(), raw);
                        value["response"] = Value::String(whole);
                        return Ok(json_body(StatusCode::OK, &value));
                    }
                }
                Event::Error(message) => {
                    return Err(Refusal(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        message.to_owned(),
                    ));
                }
                Event::Abort => break,
            }
        }
        return Err(Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "aborted".to_owned(),
        ));
    }
    let first = generation.next().await;
    let rest = stream::unfold(generation, |mut generation| async move {
        generation.next().await.map(|event| (event, generation))
    });
    let body = stream::iter(first)
        .chain(rest)
        .map(move |event| match event {
            Event::Object(object) => Ok(ndjson(&as_generate(
                &serde_json::to_value(&object).unwrap_or_default(),
                raw,
            ))),
            Event::Error(message) => Ok(ndjson(&json!({"error": message}))),
            Event::Abort => Err(std::io::Error::other("fake Ollama cut the connection")),
        });
    Ok(respond(StatusCode::OK, NDJSON, Body::from_stream(body)))
}

/// A chat object reshaped as `api.GenerateResponse`: `response` (and `thinking`) at the top;
/// the final object of a templated (not `raw`) generation also carries its `context`.
fn as_generate(chat: &Value, raw: bool) -> Value {
    let mut out = Map::new();
    for (key, value) in chat.as_object().into_iter().flatten() {
        if key == "message" {
            out.insert("response".into(), value["content"].clone());
            if let Some(thinking) = value.get("thinking") {
                out.insert("thinking".into(), thinking.clone());
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    if chat["done"] == true && chat["done_reason"] != "load" && !raw {
        out.insert("context".into(), json!([151_644, 872, 198]));
    }
    Value::Object(out)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EmbedRequest {
    model: Option<String>,
    input: Value,
    dimensions: Option<usize>,
}

/// Deterministic unit vectors: the same text always gets the same vector.
pub(crate) async fn embed(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let parsed = parse_body(&body)?;
    shared.note(|log| &mut log.embed_requests, parsed.clone());
    let request: EmbedRequest = decode(&parsed)?;
    let name = request.model.unwrap_or_default();
    let missing = || {
        let message = format!("model \"{name}\" not found, try pulling it first");
        Refusal(StatusCode::NOT_FOUND, message)
    };
    let model = shared.model(&name).ok_or_else(missing)?;
    if !model.has("embedding") {
        return Err(bad_request(format!(
            "\"{name}\" does not support embeddings"
        )));
    }
    let inputs: Vec<String> = match request.input {
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(bad_request("invalid input type")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad_request("invalid input type")),
    };
    let dimensions = request.dimensions.unwrap_or(8).clamp(1, 64);
    let embeddings: Vec<Vec<f32>> = inputs.iter().map(|t| vector(t, dimensions)).collect();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    shared.record(|log| {
        if !log.loaded.contains(&model.name) {
            log.loaded.push(model.name.clone());
        }
    });
    let mut answer = json!({"model": name, "embeddings": embeddings,
                            "total_duration": 14_143_917, "load_duration": 1_019_500});
    if tokens > 0 {
        answer["prompt_eval_count"] = json!(tokens);
    }
    Ok(json_body(StatusCode::OK, &answer))
}

fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let raw: Vec<f32> = (0..dimensions)
        .map(|i| {
            let mut hasher = DefaultHasher::new();
            (text, i).hash(&mut hasher);
            (hasher.finish() % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

/// The models that ran, loaded for five more minutes.
pub(crate) async fn ps(State(shared): State<Arc<Shared>>) -> Response {
    let loaded = shared.read(|log| log.loaded.clone());
    let models: Vec<Value> = loaded
        .iter()
        .filter_map(|name| shared.model(name))
        .map(|model| {
            let mut entry = model.tags_entry();
            entry["expires_at"] = json!(MODIFIED_AT.replace("2025", "2099"));
            entry["size_vram"] = entry["size"].clone();
            entry["context_length"] = json!(model.context_length);
            entry["name"] = json!(with_tag(&model.name));
            entry
        })
        .collect();
    json_body(StatusCode::OK, &json!({ "models": models }))
}
