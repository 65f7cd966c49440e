//! Public health routes: `/livez` (the process answers) and `/api/health` (Ollama, queue and
//! key store each reported; 503 when one is down).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::state::AppState;
use crate::ollama::OllamaClient;
use crate::queue::rabbitmq::RabbitWorker;

/// One dependency's state.
#[derive(Debug, Serialize)]
pub struct Check {
    ok: bool,
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
#[derive(Debug, Serialize)]
pub struct Health {
    status: &'static str,
    ollama: Check,
    queue: Check,
    key_store: Check,
    queued: usize,
    running: usize,
}

/// Liveness: the process is up.
pub async fn livez() -> &'static str {
    "ok"
}

/// Readiness with details.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (ollama, key_store) = tokio::join!(state.catalog.health(), state.keys.ping());
    let snapshot = state.queue.snapshot();
    let backend = state.queue.health();
    let queue = if backend.ok {
        Ok(format!("{}: {}", backend.backend, backend.detail))
    } else {
        Err(format!("{}: {}", backend.backend, backend.detail))
    };
    let report = Health {
        status: "ok",
        ollama: Check::from(ollama),
        queue: Check::from(queue),
        key_store: Check::from(key_store.map(|()| String::new())),
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
    /// The worker's broker handle.
    pub broker: Option<RabbitWorker>,
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
    let broker = state.broker.map(|b| b.status()).unwrap_or_default();
    let queue = Check::from(if broker.connected && !broker.blocked {
        Ok("rabbitmq: connected".to_owned())
    } else {
        Err(broker
            .last_error
            .unwrap_or_else(|| "rabbitmq: not connected".to_owned()))
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
