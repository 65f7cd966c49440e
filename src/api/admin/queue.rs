//! The queue as admins see it (depth and oldest wait per tier, running jobs, workers seen)
//! and clearing it, whole or one tier. Cleared clients get a clean 503 from the queue itself:
//! a JSON error before their answer started, an in-band error event after.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::AdminCaller;
use crate::api::error::ApiError;
use crate::api::openapi::responses::{AdminAuth, NotFound};
use crate::api::params::PathParams;
use crate::api::state::AppState;
use crate::queue::{RunningJob, SchedulingView, WorkerSeen};

use super::tiers::{configured, known};

/// The queue of one tier.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierQueue {
    /// The tier.
    tier: String,
    /// Its base priority.
    priority: u8,
    /// Jobs waiting.
    queued: usize,
    /// Its limit of waiting jobs.
    max_queued: usize,
    /// Seconds the oldest waiting job has waited; 0 when none waits.
    oldest_wait_secs: f64,
    /// Jobs waiting longer than the tier's starvation time: candidates for a rescue.
    starving: usize,
    /// The tier's starvation time in seconds.
    starvation_secs: f64,
    /// Jobs of the tier this gateway rescued since it started.
    rescues: u64,
}

/// The scheduling rule at work.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulingState {
    /// The configured most of the dispatches that rescues may take.
    rescue_share: f64,
    /// The share of the last minute's dispatches that were rescues (over RabbitMQ,
    /// system-wide as this gateway knows it, about a second late for the other gateways).
    recent_rescue_share: f64,
    /// Dispatches per second over the last minute; null before the first.
    #[schema(required = true)]
    throughput_per_sec: Option<f64>,
}

/// A job a worker is running.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunningJobView {
    /// `job_...`
    job_id: String,
    /// The caller's tier.
    tier: String,
    /// The caller's key.
    key_id: String,
    /// That key's name; null if the key is gone.
    #[schema(required = true)]
    key_name: Option<String>,
    /// The installed model it runs on.
    model: String,
    /// The worker running it.
    worker: String,
    /// Unix seconds when the worker started it.
    started_at: u64,
    /// Tokens relayed so far (deltas, about one token each).
    tokens: u64,
}

/// A worker that has run jobs for this gateway.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerView {
    /// Its name.
    name: String,
    /// Generations it runs at once.
    slots: usize,
    /// Jobs it runs now (over RabbitMQ, for every gateway).
    running: usize,
    /// Unix seconds it was last heard from: its last job start or, over RabbitMQ, its last
    /// announcement.
    last_seen: u64,
}

/// The whole queue.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "queued": 1,
    "tiers": [
        {"tier": "free", "priority": 1, "queued": 1, "max_queued": 1000, "oldest_wait_secs": 42.5,
            "starving": 1, "starvation_secs": 30.0, "rescues": 3},
        {"tier": "pro", "priority": 2, "queued": 0, "max_queued": 1000, "oldest_wait_secs": 0.0,
            "starving": 0, "starvation_secs": 30.0, "rescues": 0}],
    "scheduling": {"rescue_share": 0.1, "recent_rescue_share": 0.04, "throughput_per_sec": 2.5},
    "running": [{"job_id": "job_T3xk9QmZr2LpV8bN4cYw", "tier": "pro", "key_id": "key_7fQ2mZpXc9LkT1aB",
        "key_name": "alice-laptop", "model": "llama3.2:latest", "worker": "embedded-8080",
        "started_at": 1767225600, "tokens": 42}],
    "workers": [{"name": "embedded-8080", "slots": 1, "running": 1, "last_seen": 1767225600}]
}))]
pub struct QueueView {
    /// Jobs waiting, all tiers.
    queued: usize,
    /// Every configured tier, lowest priority first.
    tiers: Vec<TierQueue>,
    /// The rescue share in use and the recent dispatch rate.
    scheduling: SchedulingState,
    /// Running jobs of the whole system (over RabbitMQ, other gateways' too, as they last
    /// reported them about a second ago), oldest first.
    running: Vec<RunningJobView>,
    /// Workers by name: those that ran this gateway's jobs and, over RabbitMQ, every worker
    /// announcing itself.
    workers: Vec<WorkerView>,
}

/// What a clear removed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"cleared": 3, "tier": "free"}))]
pub struct Cleared {
    /// Queued jobs failed with 503; running jobs are not touched.
    cleared: usize,
    /// The tier cleared; null when all were.
    #[schema(required = true)]
    tier: Option<String>,
}

/// The queue now.
#[utoipa::path(
    get,
    path = "/admin/queue",
    tag = "queue",
    operation_id = "getQueue",
    security(("bearer" = [])),
    responses((status = 200, description = "Depth per tier, running jobs, workers.", body = QueueView), AdminAuth),
)]
pub async fn show(
    _admin: AdminCaller,
    State(state): State<AppState>,
) -> Result<Json<QueueView>, ApiError> {
    let snapshot = state.queue.snapshot();
    let SchedulingView {
        rescue_share,
        recent_rescue_share,
        throughput_per_sec,
        rescues,
    } = state.queue.scheduling();
    let tiers = configured(&state)
        .into_iter()
        .map(|t| {
            let depth = snapshot.tiers.iter().find(|d| d.tier == t.name);
            TierQueue {
                tier: t.name.clone(),
                priority: t.priority,
                queued: depth.map_or(0, |d| d.queued),
                max_queued: t.max_queued,
                oldest_wait_secs: depth.map_or(0.0, |d| d.oldest_wait_secs),
                starving: depth.map_or(0, |d| d.starving),
                starvation_secs: t.starvation_secs.unwrap_or_default(),
                rescues: rescues.get(&t.name).copied().unwrap_or(0),
            }
        })
        .collect();
    let jobs = state.queue.running();
    // A few running jobs (one per slot) share even fewer keys: one lookup per key.
    let mut names: HashMap<String, Option<String>> = HashMap::new();
    for job in &jobs {
        if !names.contains_key(&job.key_id) {
            let name = state.keys.name(&job.key_id).await?;
            names.insert(job.key_id.clone(), name);
        }
    }
    let running = jobs
        .into_iter()
        .map(|job: RunningJob| RunningJobView {
            key_name: names.get(&job.key_id).cloned().flatten(),
            job_id: job.job_id,
            tier: job.tier,
            key_id: job.key_id,
            model: job.model,
            worker: job.worker,
            started_at: job.started_at,
            tokens: job.tokens,
        })
        .collect();
    let workers = state
        .queue
        .workers_seen()
        .into_iter()
        .map(|w: WorkerSeen| WorkerView {
            name: w.name,
            slots: w.slots,
            running: w.running,
            last_seen: w.last_seen,
        })
        .collect();
    Ok(Json(QueueView {
        queued: snapshot.queued(),
        tiers,
        scheduling: SchedulingState {
            rescue_share,
            recent_rescue_share,
            throughput_per_sec,
        },
        running,
        workers,
    }))
}

/// Fails every queued job of every tier with 503; running jobs go on.
#[utoipa::path(
    delete,
    path = "/admin/queue",
    tag = "queue",
    operation_id = "clearQueue",
    security(("bearer" = [])),
    responses((status = 200, description = "How many queued jobs were failed.", body = Cleared), AdminAuth),
)]
pub async fn clear_all(
    AdminCaller(admin): AdminCaller,
    State(state): State<AppState>,
) -> Json<Cleared> {
    let cleared = state.queue.clear(None);
    tracing::info!(by = %admin.id, cleared, "queue cleared");
    Json(Cleared {
        cleared,
        tier: None,
    })
}

/// Fails every queued job of one tier with 503; other tiers and running jobs go on.
#[utoipa::path(
    delete,
    path = "/admin/queue/{tier}",
    tag = "queue",
    operation_id = "clearTierQueue",
    security(("bearer" = [])),
    params(("tier" = String, Path, description = "A configured tier.", example = "free")),
    responses(
        (status = 200, description = "How many queued jobs of the tier were failed.", body = Cleared),
        AdminAuth,
        NotFound,
    ),
)]
pub async fn clear_tier(
    AdminCaller(admin): AdminCaller,
    State(state): State<AppState>,
    PathParams(tier): PathParams<String>,
) -> Result<Json<Cleared>, ApiError> {
    let tier = known(&state, &tier, ApiError::NotFound)?;
    let cleared = state.queue.clear(Some(tier));
    tracing::info!(by = %admin.id, tier, cleared, "queue cleared");
    Ok(Json(Cleared {
        cleared,
        tier: Some(tier.to_owned()),
    }))
}
