//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format, for an admin key or a key
//! of role `metrics`, so a scraper needs no admin rights (a Prometheus scrape job sends it with
//! `authorization: {credentials: ...}`).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::api::auth::MetricsCaller;
use crate::api::openapi::responses::AdminAuth;
use crate::api::state::AppState;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics, with queue and worker gauges as they are now.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin",
    operation_id = "metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Requests by tier and outcome, refusals, job failures, tokens, \
            queue wait, time to first token and tokens/s histograms per tier, queue depth, running \
            jobs and in-flight jobs per worker.",
            body = String, content_type = "application/openmetrics-text",
            example = "# TYPE seadragon_requests counter\nseadragon_requests_total{tier=\"pro\",outcome=\"completed\"} 12\n# EOF\n"),
        AdminAuth,
    ),
)]
pub async fn show(_caller: MetricsCaller, State(state): State<AppState>) -> impl IntoResponse {
    let text = state.stats.metrics().render(
        &state.queue.snapshot(),
        &state.queue.scheduling(),
        state.queue.board(),
    );
    ([(CONTENT_TYPE, OPENMETRICS)], text)
}
