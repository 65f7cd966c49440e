//! Running one claimed job: call Ollama, convert its stream, send events, stop when the
//! client leaves.

use crate::ollama::{OllamaClient, OllamaError};
use crate::openai::convert::{Converted, StreamConverter};
use crate::queue::{Assignment, JobEvent, JobFailure};

/// Why relaying stopped early.
enum Stop {
    Failed(JobFailure),
    ClientGone,
}

/// Runs `job` on Ollama and reports every event. Returns when the answer ended, failed, or the
/// client went away (in which case the Ollama request is dropped, which stops generation).
pub(super) async fn run(
    ollama: &OllamaClient,
    job: &mut dyn Assignment,
    worker: &str,
    slots: usize,
) {
    let cancelled = job.cancelled();
    let started = JobEvent::Started {
        worker: worker.to_owned(),
        slots,
    };
    if job.send(started).await.is_err() {
        return;
    }
    let result = tokio::select! {
        () = cancelled.cancelled() => Err(Stop::ClientGone),
        result = relay(ollama, job) => result,
    };
    match result {
        Ok(()) => {}
        Err(Stop::ClientGone) => {
            tracing::debug!(job = %job.job().id, "client left; generation stopped");
        }
        Err(Stop::Failed(failure)) => {
            tracing::warn!(job = %job.job().id, status = failure.status, error = %failure.message, "job failed");
            // The client may have left meanwhile; then there is nobody to tell.
            let _ = job.send(JobEvent::Failed(failure)).await;
        }
    }
}

async fn relay(ollama: &OllamaClient, job: &mut dyn Assignment) -> Result<(), Stop> {
    let mut stream = ollama
        .chat(&job.job().body)
        .await
        .map_err(|e| Stop::Failed(failure(e)))?;
    let mut converter = StreamConverter::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Stop::Failed(failure(e)))?;
        let outputs = converter.push(chunk).map_err(|e| {
            Stop::Failed(JobFailure::new(
                502,
                format!("Ollama failed mid-answer: {e}"),
            ))
        })?;
        for output in outputs {
            let (event, last) = match output {
                Converted::Delta(delta) => (JobEvent::Delta(delta), false),
                Converted::Finished {
                    finish_reason,
                    usage,
                } => (
                    JobEvent::Finished {
                        finish_reason,
                        usage,
                    },
                    true,
                ),
            };
            job.send(event).await.map_err(|_| Stop::ClientGone)?;
            if last {
                return Ok(());
            }
        }
    }
    Err(Stop::Failed(JobFailure::new(
        502,
        "Ollama closed the answer before it was finished",
    )))
}

/// The status a client should see for an Ollama failure: client errors and "busy" keep their
/// status, other server errors become 502 (the gateway is fine, its upstream is not).
fn failure(error: OllamaError) -> JobFailure {
    match error {
        OllamaError::Unreachable { .. } => JobFailure::new(503, error.to_string()),
        OllamaError::Status { status, message } => {
            let status = match status {
                400..=499 | 503 => status,
                _ => 502,
            };
            JobFailure::new(status, message)
        }
        OllamaError::Protocol(message) => JobFailure::new(502, message),
    }
}
