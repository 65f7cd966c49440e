//! `GET /admin/tiers`: the configured tiers with their priority and limits.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::AdminCaller;
use crate::api::error::ApiError;
use crate::api::openapi::responses::AdminAuth;
use crate::api::params::invalid;
use crate::api::state::AppState;
use crate::config::TierConfig;

/// One tier as configured.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "pro", "priority": 2, "requests_per_minute": 600,
    "max_concurrent": 16, "max_queued": 1000, "max_wait_secs": 600, "starvation_secs": 30.0}))]
pub struct TierView {
    /// The name keys carry.
    name: String,
    /// Base priority, 1 to 3; only a rescued (starving) job reaches 4.
    priority: u8,
    /// Requests per minute per key.
    requests_per_minute: u32,
    /// Running plus queued requests per key.
    max_concurrent: u32,
    /// Queued jobs of the tier across the system; more get 429.
    max_queued: usize,
    /// Seconds a job may wait in the queue before it fails without running.
    max_wait_secs: u64,
    /// Seconds after which a queued job is starving and may be rescued above every tier.
    starvation_secs: f64,
}

/// The configured tiers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierList {
    /// Always `list`.
    #[schema(example = "list")]
    object: &'static str,
    /// Lowest priority first.
    data: Vec<TierView>,
}

/// The configured tiers, lowest priority first, then by name: the order of every admin view.
pub fn configured(state: &AppState) -> Vec<&TierConfig> {
    let mut tiers: Vec<&TierConfig> = state.tiers.values().collect();
    tiers.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    tiers
}

/// `tier` if it is configured; otherwise the error `unknown` builds from the configured names.
pub fn known<'a>(
    state: &AppState,
    tier: &'a str,
    unknown: impl FnOnce(String) -> ApiError,
) -> Result<&'a str, ApiError> {
    if state.tiers.contains_key(tier) {
        return Ok(tier);
    }
    let names: Vec<&str> = configured(state).iter().map(|t| t.name.as_str()).collect();
    Err(unknown(format!(
        "unknown tier '{tier}'; configured tiers: {}",
        names.join(", ")
    )))
}

/// A 400 naming `tier` for an unknown tier in a body.
pub fn invalid_tier(message: String) -> ApiError {
    invalid(Some("tier"), message)
}

/// Lists the configured tiers.
#[utoipa::path(
    get,
    path = "/admin/tiers",
    tag = "tiers",
    operation_id = "listTiers",
    security(("bearer" = [])),
    responses((status = 200, description = "The tiers, lowest priority first.", body = TierList), AdminAuth),
)]
pub async fn list(_admin: AdminCaller, State(state): State<AppState>) -> Json<TierList> {
    let data = configured(&state)
        .into_iter()
        .map(|t| TierView {
            name: t.name.clone(),
            priority: t.priority,
            requests_per_minute: t.requests_per_minute,
            max_concurrent: t.max_concurrent,
            max_queued: t.max_queued,
            max_wait_secs: t.max_wait_secs,
            starvation_secs: t.starvation_secs.unwrap_or_default(),
        })
        .collect();
    Json(TierList {
        object: "list",
        data,
    })
}
