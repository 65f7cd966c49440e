//! Public health routes: `/livez` (the process answers) and `/api/health` (Ollama, queue and
//! key store each reported; 503 when one is down).

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
    /// `ok`, or `degraded` when a part is down.
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
        (status = 200, description = "Every part answers.", body = Health),
        (status = 503, description = "A part is down; the report says which.", body = Health),
    ),
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (ollama, key_store) = tokio::join!(ollama_check(&state), state.keys.health());
    let snapshot = state.queue.snapshot();
    let report = Health {
        status: "ok",
        ollama,
        queue: queue_check(&state),
        key_store: Check::from(key_store),
        queued: snapshot.queued(),
        running: snapshot.running,
    };
    let ready = report.ollama.ok && report.queue.ok && report.key_store.ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if ready { "ok" } else { "degraded" },
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
