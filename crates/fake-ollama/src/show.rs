//! `/api/tags` and `/api/show`: the installed models with Ollama's `details`, and one model's
//! template, `model_info` and `capabilities`, which clients use to pick features.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, json};

use crate::config::{FakeModel, MODIFIED_AT};
use crate::ide;
use crate::state::Shared;
use crate::wire::{Refusal, bad_request, decode, json_body, parse_body, with_tag};

pub(crate) async fn tags(State(shared): State<Arc<Shared>>) -> Response {
    let models = shared.config.models.iter().map(FakeModel::tags_entry);
    json_body(
        StatusCode::OK,
        &json!({"models": models.collect::<Vec<_>>()}),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShowRequest {
    model: Option<String>,
    /// The legacy spelling of `model`.
    name: Option<String>,
}

pub(crate) async fn show(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let request: ShowRequest = decode(&parse_body(&body)?)?;
    let name = request
        .model
        .filter(|n| !n.is_empty())
        .or(request.name)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(bad_request("model is required"));
    }
    // Unlike chat, show reports the name normalised with its tag.
    let missing = format!("model '{}' not found", with_tag(&name));
    let model = shared
        .model(&name)
        .ok_or(Refusal(StatusCode::NOT_FOUND, missing))?;
    let mut model_info = Map::new();
    model_info.insert("general.architecture".to_owned(), json!(model.family));
    let context_key = format!("{}.context_length", model.family);
    model_info.insert(context_key, json!(model.context_length));
    model_info.insert("general.basename".to_owned(), json!(model.family));
    let show = json!({"license": "", "modelfile": format!("FROM {}\n", model.name),
                      "parameters": "stop                           \"<|eot_id|>\"",
                      "template": ide::template(model), "details": model.details(),
                      "model_info": model_info, "capabilities": model.capabilities,
                      "modified_at": MODIFIED_AT});
    Ok(json_body(StatusCode::OK, &show))
}
