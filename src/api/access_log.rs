//! Access logs: one `info` line per request, with what lets an operator follow a request id
//! from a client's error to its job and the worker's log: method, path (keys in the path were
//! removed before this layer), status, latency, and, once known, the key's id (never its
//! secret), tier, model and job id. Handlers deeper in the request note those through a
//! task-local, so no handler has to carry them back.

use std::cell::RefCell;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// What the request learned about itself on the way.
#[derive(Debug, Default, Clone)]
struct Notes {
    key_id: Option<String>,
    tier: Option<String>,
    model: Option<String>,
    job_id: Option<String>,
    /// Stage stamps (see [`crate::timeline`]), taken only when that log is on.
    accepted_us: Option<u64>,
    authenticated_us: Option<u64>,
}

tokio::task_local! {
    static NOTES: RefCell<Notes>;
}

/// Records the authenticated key (its id and tier) for the access log line.
pub fn note_key(key_id: &str, tier: &str) {
    let _ = NOTES.try_with(|notes| {
        let mut notes = notes.borrow_mut();
        notes.key_id = Some(key_id.to_owned());
        notes.tier = Some(tier.to_owned());
        notes.authenticated_us = crate::timeline::stamp();
    });
}

/// When the request was accepted and authenticated, if stamps are taken.
pub fn stamps() -> crate::timeline::GatewayStamps {
    NOTES
        .try_with(|notes| {
            let notes = notes.borrow();
            crate::timeline::GatewayStamps {
                accepted: notes.accepted_us,
                authenticated: notes.authenticated_us,
                ..Default::default()
            }
        })
        .unwrap_or_default()
}

/// Records the queued job and its model for the access log line.
pub fn note_job(job_id: &str, model: &str) {
    let _ = NOTES.try_with(|notes| {
        let mut notes = notes.borrow_mut();
        notes.job_id = Some(job_id.to_owned());
        notes.model = Some(model.to_owned());
    });
}

/// The middleware: runs the request with empty notes, then logs one line.
pub async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (notes, response) = NOTES
        .scope(
            RefCell::new(Notes {
                accepted_us: crate::timeline::stamp(),
                ..Notes::default()
            }),
            async move {
                let response = next.run(request).await;
                (NOTES.with(|n| n.borrow().clone()), response)
            },
        )
        .await;
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    tracing::info!(
        target: "seadragon::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id,
        key = %dash(&notes.key_id),
        tier = %dash(&notes.tier),
        model = %dash(&notes.model),
        job = %dash(&notes.job_id),
        "request"
    );
    response
}
