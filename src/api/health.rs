//! Public health routes: `/livez` (the process answers) and `/api/health` (Ollama, queue and
//! key store each reported; 503 when one is down).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::state::AppState;

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
    let (ollama, key_store) = tokio::join!(state.ollama.version(), state.keys.ping());
    let snapshot = state.queue.snapshot();
    let report = Health {
        status: "ok",
        ollama: Check::from(ollama.map(|v| format!("version {v}"))),
        queue: Check::from(Ok::<_, std::convert::Infallible>("embedded".to_owned())),
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
