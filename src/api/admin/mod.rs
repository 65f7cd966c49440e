//! The admin API. Every handler takes an [`AdminCaller`](super::auth::AdminCaller) as its
//! first extractor, so the admin check runs before anything else is read and cannot be
//! forgotten; a test walks the OpenAPI document to prove it for every admin route.

mod keys;
mod metrics;
mod models;
mod queue;
mod stats;
mod tiers;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

/// The admin routes with their OpenAPI paths. One `routes!` per path: the macro registers
/// every handler it is given on every path among them.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::get, keys::update, keys::revoke))
        .routes(routes!(tiers::list))
        .routes(routes!(queue::show, queue::clear_all))
        .routes(routes!(queue::clear_tier))
        .routes(routes!(models::list))
        .routes(routes!(models::get_default, models::set_default))
        .routes(routes!(stats::show))
        .routes(routes!(metrics::show))
}
