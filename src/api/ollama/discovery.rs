//! What Ollama clients ask before anything else: the version (Copilot refuses below 0.6.4),
//! the installed models, one model's details and capabilities (Roo hides models without
//! `tools`; Copilot and Roo read the context length from `model_info`), and what is loaded.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::refuse;
use crate::api::auth::Caller;
use crate::api::body::RawBody;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::catalog::CatalogError;
use crate::ollama::OllamaError;
use crate::ollama::wire::ModelEntry;

/// The lowest Ollama version behind the gateway.
#[utoipa::path(
    get,
    path = "/api/version",
    tag = "ollama",
    operation_id = "ollamaVersion",
    responses(
        (status = 200, description = "`{\"version\": \"0.12.0\"}`: the lowest version of the \
            Ollama servers behind the gateway. No key needed.", body = Object),
        (status = 503, description = "No Ollama answers: `{\"error\": \"...\"}`.", body = crate::api::openapi::ollama_errors::OllamaErrorBody),
    ),
)]
pub async fn version(State(state): State<AppState>) -> Response {
    match state.catalog.ollama_version().await {
        Ok(version) => Json(json!({ "version": version })).into_response(),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

fn entry(model: &ModelEntry) -> Value {
    json!({"name": model.name, "model": if model.model.is_empty() { &model.name } else { &model.model },
           "modified_at": model.modified_at, "size": model.size, "digest": model.digest,
           "details": model.details})
}

/// The installed models, as Ollama lists them.
#[utoipa::path(
    get,
    path = "/api/tags",
    tag = "ollama",
    operation_id = "ollamaTags",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"models\": [...]}` with `name`, `model`, \
            `modified_at`, `size`, `digest` and `details`, newest first.", body = Object),
        crate::api::openapi::ollama_errors::KeyAuth,
        crate::api::openapi::ollama_errors::Unavailable,
    ),
)]
pub async fn tags(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    let models = state.catalog.models().await?;
    let models: Vec<Value> = models.iter().map(entry).collect();
    Ok(Json(json!({ "models": models })).into_response())
}

/// One model's details, capabilities and metadata (aliases and `default` resolve).
#[utoipa::path(
    post,
    path = "/api/show",
    tag = "ollama",
    operation_id = "ollamaShow",
    security(("bearer" = [])),
    request_body(content = Object, description = "`{\"model\": \"llama3.2\"}` (or the \
        legacy `{\"name\": ...}`)."),
    responses(
        (status = 200, description = "Ollama's answer: `details`, `model_info`, \
            `capabilities`, `template`, `parameters`, ...", body = Object),
        crate::api::openapi::ollama_errors::BadRequest,
        crate::api::openapi::ollama_errors::KeyAuth,
        crate::api::openapi::ollama_errors::NotFound,
        crate::api::openapi::ollama_errors::Unavailable,
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    if body.is_empty() {
        return Ok(refuse(StatusCode::BAD_REQUEST, "missing request body"));
    }
    let mut request: serde_json::Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return Ok(refuse(StatusCode::BAD_REQUEST, &e.to_string())),
    };
    let name = ["model", "name"]
        .iter()
        .filter_map(|k| request.get(*k).and_then(Value::as_str))
        .find(|n| !n.is_empty())
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return Ok(refuse(StatusCode::BAD_REQUEST, "model is required"));
    }
    let installed = match state.catalog.resolve(&name).await {
        Ok(installed) => installed,
        Err(CatalogError::NotFound(_)) => {
            let tagged = if name.contains(':') {
                name
            } else {
                format!("{name}:latest")
            };
            return Ok(refuse(
                StatusCode::NOT_FOUND,
                &format!("model '{tagged}' not found"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    request.remove("name");
    request.insert("model".into(), Value::String(installed.clone()));
    match state
        .catalog
        .show_raw(&installed, &Value::Object(request))
        .await
    {
        Some(Ok(show)) => Ok(Json(show).into_response()),
        Some(Err(OllamaError::Status { status, message })) => Ok(refuse(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            &message,
        )),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "Ollama did not answer /api/show");
            Err(ApiError::Unavailable(
                "Ollama is unreachable; retry shortly".to_owned(),
            ))
        }
        // Behind a broker, from a worker that did not announce the model's details.
        None => {
            let models = state.catalog.models().await?;
            let found = models.iter().find(|m| m.name == installed);
            let details = found.map_or(Value::Null, |m| m.details.clone());
            let modified_at = found.map_or("", |m| m.modified_at.as_str());
            Ok(Json(
                json!({"details": details, "model_info": {}, "modified_at": modified_at,
                           "template": "", "parameters": "", "capabilities": ["completion"]}),
            )
            .into_response())
        }
    }
}

/// The models loaded in memory.
#[utoipa::path(
    get,
    path = "/api/ps",
    tag = "ollama",
    operation_id = "ollamaPs",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"models\": [...]}` with `expires_at` and `size_vram`; \
            behind a broker, every worker's as it last announced them.", body = Object),
        crate::api::openapi::ollama_errors::KeyAuth,
        crate::api::openapi::ollama_errors::Unavailable,
    ),
)]
pub async fn ps(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    Ok(Json(state.catalog.loaded().await?).into_response())
}
