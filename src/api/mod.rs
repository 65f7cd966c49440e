//! The HTTP surface: OpenAI routes, Ollama's native API (`ollama/`), admin routes and health,
//! with the layers every response shares (request id, body limit, tracing, keys in the path
//! under `/k/<key>/`) and OpenAI-shaped answers for unknown routes.
//! Routes are registered together with their OpenAPI paths, served at `/openapi.json` and
//! browsable with Swagger UI at `/docs`; the admin dashboard, a page over the admin API, is at
//! `/dashboard`.

mod access_log;
mod admin;
mod answer;
mod auth;
mod body;
mod chat;
mod completions;
mod dashboard;
mod embeddings;
pub mod error;
mod health;
mod limits;
mod models;
mod ollama;
pub mod openapi;
mod params;
mod request_path;
mod responses;
pub mod state;
mod stream;
mod submit;
mod turn;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

pub use error::ApiError;
pub use state::AppState;

use body::BodyLimit;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes `req_<random>` ids for requests that arrive without an `x-request-id`.
#[derive(Debug, Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = format!("req_{}", crate::ids::random_alphanumeric(24));
        id.parse().ok().map(RequestId::new)
    }
}

/// The OpenAI routes, which the per-key rate limit guards.
fn openai_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat::create))
        .routes(routes!(completions::create))
        .routes(routes!(embeddings::create))
        .routes(routes!(responses::create))
        .routes(routes!(models::list))
        // Model ids may contain slashes; `ApiDoc` documents this path as `/v1/models/{id}`.
        .route("/v1/models/{*id}", get(models::get))
}

/// Health and admin routes.
fn other_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(health::livez))
        .merge(admin::router())
}

/// Every route with its OpenAPI path.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(openai_routes())
        .merge(ollama::job_routes())
        .merge(ollama::routes())
        .merge(other_routes())
}

/// The OpenAPI document of every route, as `/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The whole router.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let doc = openapi();
    let (openai, _) = openai_routes().split_for_parts();
    let openai = openai.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        limits::rate_limit,
    ));
    let (ollama_jobs, _) = ollama::job_routes().split_for_parts();
    let ollama_jobs = ollama_jobs.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        limits::rate_limit,
    ));
    let (ollama, _) = ollama::routes().split_for_parts();
    let ollama = ollama
        .merge(ollama_jobs)
        // Not in the document: it only answers paths that do not exist.
        .route("/api/{*rest}", axum::routing::any(ollama::unknown))
        .layer(axum::middleware::from_fn(ollama::ollama_errors));
    let (others, _) = other_routes().split_for_parts();
    // Swagger UI's default validator is an online service: the page must work offline.
    let docs = SwaggerUi::new("/docs").url("/openapi.json", doc).config(
        SwaggerConfig::default()
            .validator_url("none")
            .display_request_duration(true),
    );
    let app = openai
        .merge(ollama)
        .merge(others)
        .merge(docs)
        .merge(dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyLimit(max_body_bytes)))
        .layer(TraceLayer::new_for_http())
        // Inside the request id layers: the access line carries the id the client sees.
        .layer(axum::middleware::from_fn(access_log::log))
        // Set runs outermost, so the propagating layer inside it always finds an id and
        // every response, errors included, carries it.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId));
    // A layer on a router runs after its routing, so the path is normalised by an outer
    // router whose only route is the whole app: everything inside, tracing included, sees
    // the path without a key in it.
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::map_request(request_path::normalise))
}

/// The router of a worker process: health only.
pub fn worker_router(
    ollama: crate::ollama::OllamaClient,
    work: std::sync::Arc<dyn crate::queue::WorkQueue>,
) -> Router {
    Router::new()
        .route("/api/health", get(health::worker_health))
        .route("/livez", get(health::livez))
        .fallback(not_found)
        .with_state(health::WorkerHealth { ollama, work })
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Unknown route. See /docs for the API.".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
