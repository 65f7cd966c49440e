//! Model management is the administrators' business, on the Ollama servers themselves: the
//! gateway refuses it with a message saying so, in Ollama's error shape, never a bare 404.
//! A pull of a model that is already installed succeeds, as Ollama's would, so clients that
//! "pull to make sure" (Codex `--oss`) go on.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::refuse;
use crate::api::auth::Caller;
use crate::api::body::RawBody;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::catalog::CatalogError;

fn managed(route: &str) -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        &format!(
            "{route} is not available through Seadragon: models are managed by the administrators \
             of the Ollama servers behind it. GET /api/tags lists the installed models."
        ),
    )
}

/// Succeeds for an installed model; otherwise refuses.
#[utoipa::path(
    post,
    path = "/api/pull",
    tag = "ollama",
    operation_id = "ollamaPull",
    security(("bearer" = [])),
    request_body(content = Object, description = "`{\"model\": ..., \"stream\": true}`."),
    responses(
        (status = 200, description = "The model is installed: `{\"status\": \"success\"}` \
            (as NDJSON unless `stream: false`).", body = Object),
        (status = 403, description = "The model is not installed; the gateway does not pull.", body = crate::api::openapi::ollama_errors::OllamaErrorBody),
        crate::api::openapi::ollama_errors::KeyAuth,
    ),
)]
pub async fn pull(
    State(state): State<AppState>,
    _caller: Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = ["model", "name"]
        .iter()
        .filter_map(|k| request.get(*k).and_then(Value::as_str))
        .find(|n| !n.is_empty())
        .unwrap_or_default();
    match state.catalog.resolve(name).await {
        Ok(_) if request.get("stream") == Some(&Value::Bool(false)) => {
            Ok(Json(json!({"status": "success"})).into_response())
        }
        Ok(_) => Ok((
            [(CONTENT_TYPE, "application/x-ndjson")],
            "{\"status\":\"success\"}\n",
        )
            .into_response()),
        Err(CatalogError::NotFound(_)) => Ok(refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "model '{name}' is not installed, and Seadragon does not pull models: ask an \
                 administrator to install it on the Ollama servers. GET /api/tags lists the \
                 installed models."
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

macro_rules! refusal {
    ($($name:ident, $method:ident, $path:literal, $id:literal;)+) => {$(
        /// Refused: models are managed on the Ollama servers.
        #[utoipa::path(
            $method,
            path = $path,
            tag = "ollama",
            operation_id = $id,
            security(("bearer" = [])),
            responses(
                (status = 403, description = "Always: `{\"error\": \"...\"}` saying why.", body = crate::api::openapi::ollama_errors::OllamaErrorBody),
                crate::api::openapi::ollama_errors::KeyAuth,
            ),
        )]
        pub async fn $name(_caller: Caller) -> Response {
            managed($path)
        }
    )+};
}

refusal! {
    push, post, "/api/push", "ollamaPush";
    create, post, "/api/create", "ollamaCreate";
    copy, post, "/api/copy", "ollamaCopy";
    delete, delete, "/api/delete", "ollamaDelete";
}
