//! The OpenAPI document: the parts no handler carries (title, pinned version, bearer scheme,
//! tags, shared schemas and error responses). Each handler adds its own path through its
//! `#[utoipa::path]` attribute when the router registers it, so a route cannot exist without
//! being documented; [`crate::api::openapi`] returns the assembled document.

pub mod chat_request;
pub mod chat_response;
pub mod completions;
pub mod embeddings;
pub mod ollama_errors;
pub mod responses;
pub mod sse;

use ollama_errors::{OllamaErrorBody, OllamaErrorComponents};
use responses::ErrorComponents;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The security scheme every key-protected route names.
pub const BEARER: &str = "bearer";

/// `{"error": {...}}`: the body of every error, in OpenAI's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorObject,
}

/// OpenAI's error object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// What went wrong, in words a developer can act on.
    pub message: String,
    /// `invalid_request_error`, `requests` (429) or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The offending parameter (`messages[0].content`, `tier`), when there is one.
    #[schema(required = true)]
    pub param: Option<String>,
    /// A machine-readable code (`invalid_api_key`, `model_not_found`, ...), when there is one.
    #[schema(required = true)]
    pub code: Option<String>,
}

/// Adds the bearer scheme: an API key `sk-sd-...` (or the bootstrap admin key).
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("sk-sd-...")
            .description(Some(
                "An API key. OpenAI routes take any valid key; admin routes need an admin key.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// Drops what utoipa copies from the crate's metadata (an empty `license`): the document
/// describes the API, not the package.
#[derive(Debug)]
struct ApiInfoOnly;

impl Modify for ApiInfoOnly {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info.license = None;
        doc.info.contact = None;
    }
}

/// The document's fixed parts. `version` is the API's, pinned so that a crate release alone
/// does not change the committed document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Seadragon",
        version = "1",
        description = "An OpenAI-compatible gateway in front of Ollama with a priority queue \
            keyed by API-key tier, and its admin API. Use **Authorize** with an admin key to \
            call the admin routes from this page. The [admin dashboard](/dashboard) shows the \
            queue, models and keys with the same admin key.",
    ),
    paths(super::models::get),
    components(schemas(
        ErrorResponse,
        OllamaErrorBody,
        chat_response::ChatCompletionChunk,
    )),
    modifiers(&ApiInfoOnly, &BearerAuth, &ErrorComponents, &OllamaErrorComponents),
    tags(
        (name = "openai", description = "OpenAI-compatible routes; any valid key."),
        (name = "ollama", description = "Ollama's native API with Ollama's shapes; a key             (bearer, or in the path as `/k/<key>/api/...`) except for `/api/version`."),
        (name = "health", description = "Liveness and readiness; no key."),
        (name = "keys", description = "Admin: API keys. Secrets are shown once and stored as hashes."),
        (name = "tiers", description = "Admin: the configured tiers."),
        (name = "queue", description = "Admin: queue depth, running jobs, workers; clearing."),
        (name = "models", description = "Admin: installed models, aliases, the default model."),
        (name = "stats", description = "Admin: requests, tokens and queue waits since start-up."),
    ),
)]
pub struct ApiDoc;
