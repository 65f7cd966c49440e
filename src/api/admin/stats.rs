//! `GET /admin/stats`: uptime, requests by tier and outcome, tokens by tier and model,
//! queue-wait percentiles per tier, and the state of Ollama and the queue backend.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::AdminCaller;
use crate::api::health::{Check, ollama_check, queue_check};
use crate::api::openapi::responses::AdminAuth;
use crate::api::state::AppState;
use crate::stats::{Outcomes, TierStats, WAIT_WINDOW, WaitPercentiles};

use super::tiers::configured;

/// Requests of a tier by how they ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestCounts {
    /// All of them.
    total: u64,
    /// Answered in full.
    completed: u64,
    /// Failed after they were queued: cleared, expired in the queue, Ollama errors.
    failed: u64,
    /// Their client left before the end.
    cancelled: u64,
    /// Refused by the queue (tier full, shutting down) with 429 or 503.
    rejected: u64,
}

impl From<Outcomes> for RequestCounts {
    fn from(o: Outcomes) -> Self {
        Self {
            total: o.completed + o.failed + o.cancelled + o.rejected,
            completed: o.completed,
            failed: o.failed,
            cancelled: o.cancelled,
            rejected: o.rejected,
        }
    }
}

/// Queue-wait percentiles, in milliseconds: submission to the worker's start.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueWait {
    /// Jobs they are computed over: the tier's most recent started jobs.
    samples: usize,
    /// Median.
    p50_ms: f64,
    /// 95th percentile.
    p95_ms: f64,
    /// Longest.
    max_ms: f64,
}

impl From<WaitPercentiles> for QueueWait {
    fn from(w: WaitPercentiles) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        Self {
            samples: w.samples,
            p50_ms: ms(w.p50),
            p95_ms: ms(w.p95),
            max_ms: ms(w.max),
        }
    }
}

/// One tier's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierStatsView {
    /// The tier.
    tier: String,
    /// Chat requests that reached the queue, by outcome.
    requests: RequestCounts,
    /// Prompt tokens of completed requests (in).
    prompt_tokens: u64,
    /// Completion tokens of completed requests (out).
    completion_tokens: u64,
    /// Null until a job of the tier has started.
    #[schema(required = true)]
    queue_wait: Option<QueueWait>,
}

/// Tokens of one model for one tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStatsView {
    /// The tier.
    tier: String,
    /// The installed model.
    model: String,
    /// Completed requests.
    requests: u64,
    /// Prompt tokens (in).
    prompt_tokens: u64,
    /// Completion tokens (out).
    completion_tokens: u64,
}

/// The queue backend's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueState {
    /// Whether it works, and which backend it is.
    #[serde(flatten)]
    check: Check,
    /// Jobs waiting.
    queued: usize,
    /// Jobs running.
    running: usize,
}

/// The statistics since start-up.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "started_at": 1767225600, "uptime_secs": 3600, "wait_window": 1000,
    "tiers": [{"tier": "pro", "requests": {"total": 12, "completed": 10, "failed": 1,
        "cancelled": 1, "rejected": 0}, "prompt_tokens": 2400, "completion_tokens": 9100,
        "queue_wait": {"samples": 11, "p50_ms": 3.1, "p95_ms": 840.0, "max_ms": 1210.5}}],
    "models": [{"tier": "pro", "model": "llama3.2:latest", "requests": 10,
        "prompt_tokens": 2400, "completion_tokens": 9100}],
    "ollama": {"ok": true, "detail": "version 0.33.0"},
    "queue": {"ok": true, "detail": "embedded", "queued": 0, "running": 1}
}))]
pub struct StatsView {
    /// Unix seconds when the gateway started; the numbers count from then.
    started_at: u64,
    /// Seconds since.
    uptime_secs: u64,
    /// How many recent started jobs per tier the wait percentiles cover.
    wait_window: usize,
    /// Every configured tier, lowest priority first.
    tiers: Vec<TierStatsView>,
    /// Per tier and model, for models that completed requests.
    models: Vec<ModelStatsView>,
    /// Ollama's state.
    ollama: Check,
    /// The queue backend's state.
    queue: QueueState,
}

/// Statistics since start-up.
#[utoipa::path(
    get,
    path = "/admin/stats",
    tag = "stats",
    operation_id = "getStats",
    security(("bearer" = [])),
    responses((status = 200, description = "The statistics; Ollama being down is reported, not an error.", body = StatsView), AdminAuth),
)]
pub async fn show(_admin: AdminCaller, State(state): State<AppState>) -> Json<StatsView> {
    let snapshot = state.stats.snapshot();
    let queue = state.queue.snapshot();
    let idle = TierStats::default();
    let tiers = configured(&state)
        .into_iter()
        .map(|t| tier_view(&t.name, snapshot.tiers.get(&t.name).unwrap_or(&idle)))
        .collect();
    let models = snapshot
        .models
        .into_iter()
        .map(|((tier, model), tokens)| ModelStatsView {
            tier,
            model,
            requests: tokens.requests,
            prompt_tokens: tokens.prompt,
            completion_tokens: tokens.completion,
        })
        .collect();
    Json(StatsView {
        started_at: state.stats.started_at(),
        uptime_secs: state.stats.uptime().as_secs(),
        wait_window: WAIT_WINDOW,
        tiers,
        models,
        ollama: ollama_check(&state).await,
        queue: QueueState {
            check: queue_check(&state),
            queued: queue.queued(),
            running: queue.running,
        },
    })
}

fn tier_view(tier: &str, s: &TierStats) -> TierStatsView {
    TierStatsView {
        tier: tier.to_owned(),
        requests: s.outcomes.into(),
        prompt_tokens: s.tokens.prompt,
        completion_tokens: s.tokens.completion,
        queue_wait: s.queue_wait.map(Into::into),
    }
}
