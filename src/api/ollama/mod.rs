//! Ollama's native API on the gateway's port, for clients configured with an "Ollama URL":
//! discovery (`/api/version`, `/api/tags`, `/api/show`, `/api/ps`), generation and embedding
//! as queued jobs (`/api/chat`, `/api/generate`, `/api/embed`), and clear refusals of model
//! management (`/api/pull`, `/api/delete`, ...); any other `/api/...` path gets an Ollama
//! error saying what is served.
//!
//! Every error here is in Ollama's shape, `{"error": "..."}`: handlers share the gateway's
//! one error type, and [`ollama_errors`] rewrites its OpenAI-shaped body on the way out.
//! `/api/version` needs no key (clients probe it before anything else, and it reveals
//! nothing); everything else takes a key, as a bearer header or in the path (`/k/<key>/`).

mod discovery;
mod generation;
mod refused;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;
use crate::ollama_api::render;
use crate::openai::ErrorBody;

/// Ollama's `Content-Type` for JSON answers and errors.
const JSON: &str = "application/json; charset=utf-8";

/// Discovery and refusals: light, authenticated by their handlers.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(discovery::version))
        .routes(routes!(discovery::tags))
        .routes(routes!(discovery::show))
        .routes(routes!(discovery::ps))
        .routes(routes!(refused::pull))
        .routes(routes!(refused::push))
        .routes(routes!(refused::create))
        .routes(routes!(refused::copy))
        .routes(routes!(refused::delete))
}

/// Generation and embedding: jobs, under the per-key rate limit like the OpenAI routes.
pub(super) fn job_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(generation::chat))
        .routes(routes!(generation::generate))
        .routes(routes!(generation::embed))
        .routes(routes!(generation::embeddings))
}

/// Any other `/api/...` path: Ollama clients read an Ollama error, saying what is served.
pub(super) async fn unknown() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "Seadragon serves Ollama's /api/version, /api/tags, /api/show, /api/ps, /api/chat, \
         /api/generate, /api/embed and /api/embeddings; this route is not one of them",
    )
}

/// `{"error": message}` with `status`.
pub(super) fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(JSON))],
        render::error(message),
    )
        .into_response()
}

/// Rewrites the gateway's OpenAI-shaped error bodies as Ollama's `{"error": "..."}`, keeping
/// status and headers (`Retry-After` included).
pub(super) async fn ollama_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error bodies are small; anything larger is not one of ours and is passed on unread.
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return refuse(parts.status, "the gateway could not write its error");
    };
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(openai) => {
            parts.headers.remove(CONTENT_LENGTH);
            parts
                .headers
                .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
            Response::from_parts(parts, Body::from(render::error(&openai.error.message)))
        }
        Err(_) => Response::from_parts(parts, Body::from(bytes)),
    }
}
