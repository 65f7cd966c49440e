//! Running one claimed job: call the Ollama endpoint of its kind (retrying while Ollama is down
//! or busy), convert its answer, send events, stop when the client leaves or the generation
//! runs too long.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::ollama::{ChatStream, OllamaClient, OllamaError};
use crate::openai::Usage;
use crate::openai::convert::{Converted, StreamConverter};
use crate::queue::{Assignment, Job, JobEvent, JobFailure, JobKind};
use crate::timeline::WorkerStamps;

/// First pause before asking a down or busy Ollama again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the worker needs to run one job.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Generation stops after this long, ending with `finish_reason: "length"`.
    pub generation_timeout: Duration,
}

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
    limits: Limits,
    stamps: &mut WorkerStamps,
) {
    let cancelled = job.cancelled();
    let result = tokio::select! {
        () = cancelled.cancelled() => Err(Stop::ClientGone),
        result = relay(ollama, job, limits, stamps) => result,
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

/// Calls Ollama. An unreachable or busy Ollama is asked again with backoff for as long as the
/// job may still wait; a crash (5xx) before the first token is retried once.
async fn call<T, F, Fut>(job: &Job, mut attempt: F) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OllamaError>>,
{
    let give_up = Instant::now() + job.wait_left();
    let mut backoff = FIRST_BACKOFF;
    let mut crash_retried = false;
    loop {
        let error = match attempt().await {
            Ok(answer) => return Ok(answer),
            Err(error) => error,
        };
        let transient = matches!(
            &error,
            OllamaError::Unreachable { .. } | OllamaError::Status { status: 503, .. }
        );
        let crashed = matches!(&error, OllamaError::Status { status, .. } if *status >= 500 && *status != 503);
        if transient && Instant::now() + backoff < give_up {
            tracing::info!(job = %job.id, error = %error, "Ollama cannot take the job yet; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else if crashed && !crash_retried {
            tracing::warn!(job = %job.id, error = %error, "Ollama failed before the first token; retrying once");
            crash_retried = true;
        } else {
            return Err(Stop::Failed(failure(error)));
        }
    }
}

async fn relay(
    ollama: &OllamaClient,
    job: &mut dyn Assignment,
    limits: Limits,
    stamps: &mut WorkerStamps,
) -> Result<(), Stop> {
    let kind = job.job().kind;
    if stamps.on() {
        stamps.ollama_sent = crate::timeline::stamp();
    }
    let body = std::sync::Arc::clone(&job.job().body);
    let stream = match kind {
        JobKind::Chat => call(job.job(), || ollama.chat(&body)).await?,
        JobKind::Generate => call(job.job(), || ollama.generate(&body)).await?,
        JobKind::Embed => {
            let answer = call(job.job(), || ollama.embed(&body)).await?;
            if stamps.on() {
                stamps.first_line = crate::timeline::stamp();
            }
            let usage = Usage::new(answer.prompt_eval_count, 0);
            job.send(JobEvent::Embeddings {
                vectors: answer.embeddings,
            })
            .await
            .map_err(|_| Stop::ClientGone)?;
            let finished = JobEvent::Finished {
                finish_reason: "stop".to_owned(),
                usage,
            };
            return job.send(finished).await.map_err(|_| Stop::ClientGone);
        }
    };
    relay_stream(stream, job, limits, stamps).await
}

async fn relay_stream(
    mut stream: ChatStream,
    job: &mut dyn Assignment,
    limits: Limits,
    stamps: &mut WorkerStamps,
) -> Result<(), Stop> {
    // One timer for the whole answer, not one per object.
    let stop_at = tokio::time::sleep(limits.generation_timeout);
    tokio::pin!(stop_at);
    let mut converter = StreamConverter::new();
    let mut deltas = 0u64;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = &mut stop_at => {
                // Dropping the stream stops Ollama; the client gets a clean, truncated answer.
                tracing::warn!(job = %job.job().id, "generation hit the hard timeout; stopped");
                let finished = JobEvent::Finished {
                    finish_reason: "length".to_owned(),
                    usage: Usage::new(0, deltas),
                };
                return job.send(finished).await.map_err(|_| Stop::ClientGone);
            }
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| Stop::Failed(failure(e)))?;
        if stamps.on() && stamps.first_line.is_none() {
            stamps.first_line = crate::timeline::stamp();
        }
        let outputs = converter.push(chunk).map_err(|e| {
            Stop::Failed(JobFailure::new(
                502,
                format!("Ollama failed mid-answer: {e}"),
            ))
        })?;
        for output in outputs {
            let (event, last) = match output {
                Converted::Delta(delta) => {
                    deltas += 1;
                    (JobEvent::Delta(delta), false)
                }
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
                stream.finish().await;
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
///
/// What a client reads names no internal address (an unreachable Ollama's URL, or one quoted
/// in a transport error): the detail goes to the log.
fn failure(error: OllamaError) -> JobFailure {
    match error {
        OllamaError::Unreachable { .. } => {
            tracing::warn!(error = %error, "Ollama is unreachable");
            JobFailure::new(503, "Ollama is unreachable; retry shortly")
        }
        OllamaError::Status { status, message } => {
            let status = match status {
                400..=499 | 503 => status,
                _ => 502,
            };
            JobFailure::new(status, message)
        }
        OllamaError::Protocol(message) => {
            tracing::warn!(error = %message, "Ollama's answer could not be read");
            JobFailure::new(
                502,
                "Ollama's answer broke off or could not be read; retry the request",
            )
        }
    }
}
