//! The HTTP surface: OpenAI routes, admin routes and health, with the layers every response
//! shares (request id, body limit, tracing) and OpenAI-shaped answers for unknown routes.

mod auth;
mod body;
mod chat;
pub mod error;
mod health;
mod keys;
mod limits;
mod models;
pub mod state;
mod stream;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{delete, get, post};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

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

/// The whole router.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let openai = Router::new()
        .route("/v1/chat/completions", post(chat::create))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::rate_limit,
        ));
    let admin = Router::new()
        .route("/admin/keys", post(keys::create).get(keys::list))
        .route("/admin/keys/{id}", delete(keys::revoke));
    let public = Router::new()
        .route("/api/health", get(health::health))
        .route("/livez", get(health::livez));
    Router::new()
        .merge(openai)
        .merge(admin)
        .merge(public)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyLimit(max_body_bytes)))
        .layer(TraceLayer::new_for_http())
        // Set runs outermost, so the propagating layer inside it always finds an id and
        // every response, errors included, carries it.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId))
}

/// The router of a worker process: health only.
pub fn worker_router(
    ollama: crate::ollama::OllamaClient,
    broker: Option<crate::queue::rabbitmq::RabbitWorker>,
) -> Router {
    Router::new()
        .route("/api/health", get(health::worker_health))
        .route("/livez", get(health::livez))
        .fallback(not_found)
        .with_state(health::WorkerHealth { ollama, broker })
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
