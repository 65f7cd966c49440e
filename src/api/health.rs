//! Public health routes: `/livez` (the process answers) and `/api/health` (readiness: 200 while
//! this gateway can take and queue work, 503 when its queue or key store is down; Ollama's
//! state is reported but does not fail it, so a restarting Ollama does not take every gateway
//! out of a load balancer). Public answers name no internal address: the details are in the
//! log and the admin API.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;
use crate::ollama::OllamaClient;
use std::sync::Arc;

use crate::queue::WorkQueue;

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// Whether it answers.
    ok: bool,
    /// A version, a backend name, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl Check {
    fn from<E: std::fmt::Display>(result: Result<String, E>) -> Self {
        match result {
            Ok(detail) => Self {
                ok: true,
                detail: (!detail.is_empty()).then_some(detail),
            },
            Err(e) => Self {
                ok: false,
                detail: Some(e.to_string()),
            },
        }
    }
}

/// The health report.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "ollama": {"ok": true, "detail": "version 0.33.0"},
    "queue": {"ok": true, "detail": "embedded"}, "key_store": {"ok": true}, "queued": 0, "running": 1}))]
pub struct Health {
    /// `ok`; `degraded` when Ollama (or every worker) is down but work is still queued;
    /// `unavailable` when the queue or the key store is down.
    status: &'static str,
    /// Ollama's state.
    ollama: Check,
    /// The queue backend's state.
    queue: Check,
    /// The key store's state.
    key_store: Check,
    /// Jobs waiting.
    queued: usize,
    /// Jobs running.
    running: usize,
}

/// Whether whatever runs the models answers (Ollama itself, or the workers behind the
/// broker); also shown by the admin stats.
pub(super) async fn ollama_check(state: &AppState) -> Check {
    Check::from(state.catalog.health().await)
}

/// The queue backend's state; also shown by the admin stats.
pub(super) fn queue_check(state: &AppState) -> Check {
    let backend = state.queue.health();
    let detail = format!("{}: {}", backend.backend, backend.detail);
    Check::from(if backend.ok { Ok(detail) } else { Err(detail) })
}

/// Liveness: the process is up.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "health",
    operation_id = "livez",
    responses((status = 200, description = "The process answers.", body = String, content_type = "text/plain", example = "ok")),
)]
pub async fn livez() -> &'static str {
    "ok"
}

/// Readiness with details.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    operation_id = "health",
    responses(
        (status = 200, description = "This gateway takes work: `ok`, or `degraded` when Ollama \
            (or every worker) is down and jobs wait for it.", body = Health),
        (status = 503, description = "The queue or the key store is down: the report says which.",
            body = Health),
    ),
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (mut ollama, key_store) = tokio::join!(ollama_check(&state), state.keys.health());
    if !ollama.ok {
        // The detail names Ollama's address: it goes to the log and the admin API only.
        tracing::debug!(detail = ?ollama.detail, "health: Ollama is down");
        ollama.detail = Some("unreachable (details in the log and GET /admin/stats)".to_owned());
    }
    let mut queue = queue_check(&state);
    if !queue.ok {
        // A broker error may name its host: the detail stays in the log and the admin API.
        queue.detail = Some(format!(
            "{}: unavailable (details in the log and GET /admin/stats)",
            state.queue.health().backend
        ));
    }
    let snapshot = state.queue.snapshot();
    let report = Health {
        status: "ok",
        ollama,
        queue,
        key_store: Check::from(key_store),
        queued: snapshot.queued(),
        running: snapshot.running,
    };
    let takes_work = report.queue.ok && report.key_store.ok;
    let (status, word) = match (takes_work, report.ollama.ok) {
        (true, true) => (StatusCode::OK, "ok"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    (
        status,
        Json(Health {
            status: word,
            ..report
        }),
    )
}

/// What a worker process checks: its Ollama and its broker session.
#[derive(Debug, Clone)]
pub struct WorkerHealth {
    /// The worker's Ollama.
    pub ollama: OllamaClient,
    /// The worker side of the queue.
    pub work: Arc<dyn WorkQueue>,
}

/// A worker's health report.
#[derive(Debug, Serialize)]
pub struct WorkerReport {
    status: &'static str,
    ollama: Check,
    queue: Check,
}

/// Readiness of a worker process.
pub async fn worker_health(State(state): State<WorkerHealth>) -> (StatusCode, Json<WorkerReport>) {
    let ollama = Check::from(state.ollama.version().await.map(|v| format!("Ollama {v}")));
    let health = state.work.health();
    let queue = Check::from(if health.ok {
        Ok(health.detail)
    } else {
        Err(health.detail)
    });
    let ready = ollama.ok && queue.ok;
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(WorkerReport {
            status: if ready { "ok" } else { "degraded" },
            ollama,
            queue,
        }),
    )
}
