//! Running one claimed job: call Ollama (retrying while it is down or busy), convert its
//! stream, send events, stop when the client leaves or the generation runs too long.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::ollama::{ChatStream, OllamaClient, OllamaError};
use crate::openai::Usage;
use crate::openai::convert::{Converted, StreamConverter};
use crate::queue::{Assignment, Job, JobEvent, JobFailure};

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

/// How long a worker lets Ollama work on a job whose claim is still unanswered. A grant comes
/// back in about a millisecond; a claim that takes longer (its gateway died and the claim waits
/// for its timeout) must not have Ollama generate an answer nobody will read.
const SPECULATION_WINDOW: Duration = Duration::from_millis(100);

/// The first Ollama call of a job, as the claim left it.
pub(super) enum FirstCall<F> {
    /// It ended while the claim was pending.
    Done(Result<ChatStream, OllamaError>),
    /// It is still running.
    Running(Pin<Box<F>>),
    /// It was dropped because the claim took too long; call again.
    Dropped,
}

/// Runs `call` while waiting for `claim`, for at most [`SPECULATION_WINDOW`]; returns the
/// claim's answer and what became of the call.
pub(super) async fn claim_while<C, F>(claim: C, call: F) -> (C::Output, FirstCall<F>)
where
    C: Future,
    F: Future<Output = Result<ChatStream, OllamaError>>,
{
    let mut claim = std::pin::pin!(claim);
    let mut first = FirstCall::Running(Box::pin(call));
    let window = tokio::time::sleep(SPECULATION_WINDOW);
    tokio::pin!(window);
    loop {
        let running = matches!(first, FirstCall::Running(_));
        tokio::select! {
            // The claim first: in process it is granted at once, and the call starts after.
            biased;
            granted = &mut claim => return (granted, first),
            outcome = async {
                match &mut first {
                    FirstCall::Running(call) => call.as_mut().await,
                    _ => std::future::pending().await,
                }
            }, if running => first = FirstCall::Done(outcome),
            () = &mut window, if running => first = FirstCall::Dropped,
        }
    }
}

/// Runs `job` on Ollama and reports every event. Returns when the answer ended, failed, or the
/// client went away (in which case the Ollama request is dropped, which stops generation).
pub(super) async fn run<F>(
    ollama: &OllamaClient,
    job: &mut dyn Assignment,
    first_call: FirstCall<F>,
    limits: Limits,
) where
    F: Future<Output = Result<ChatStream, OllamaError>>,
{
    let cancelled = job.cancelled();
    let result = tokio::select! {
        () = cancelled.cancelled() => Err(Stop::ClientGone),
        result = relay(ollama, job, first_call, limits) => result,
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

/// Opens the Ollama stream. An unreachable or busy Ollama is asked again with backoff for as
/// long as the job may still wait; a crash (5xx) before the first token is retried once.
async fn open<F>(
    ollama: &OllamaClient,
    job: &Job,
    first_call: FirstCall<F>,
) -> Result<ChatStream, Stop>
where
    F: Future<Output = Result<ChatStream, OllamaError>>,
{
    let give_up = Instant::now() + job.wait_left();
    let mut backoff = FIRST_BACKOFF;
    let mut crash_retried = false;
    let mut outcome = match first_call {
        FirstCall::Done(outcome) => outcome,
        FirstCall::Running(call) => call.await,
        FirstCall::Dropped => ollama.chat(&job.body).await,
    };
    loop {
        let error = match outcome {
            Ok(stream) => return Ok(stream),
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
        outcome = ollama.chat(&job.body).await;
    }
}

async fn relay<F>(
    ollama: &OllamaClient,
    job: &mut dyn Assignment,
    first_call: FirstCall<F>,
    limits: Limits,
) -> Result<(), Stop>
where
    F: Future<Output = Result<ChatStream, OllamaError>>,
{
    let mut stream = open(ollama, job.job(), first_call).await?;
    let stop_at = tokio::time::Instant::now() + limits.generation_timeout;
    let mut converter = StreamConverter::new();
    let mut deltas = 0u64;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = tokio::time::sleep_until(stop_at) => {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// An Ollama call that never answers and records when it is dropped (the request aborted).
    fn call(dropped: &Arc<AtomicBool>) -> impl Future<Output = Result<ChatStream, OllamaError>> {
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = OnDrop(Arc::clone(dropped));
        async move {
            let _guard = guard;
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_prompt_claim_keeps_the_call_running() {
        let dropped = Arc::new(AtomicBool::new(false));
        let (granted, first) = claim_while(async { true }, call(&dropped)).await;
        assert!(granted);
        assert!(matches!(first, FirstCall::Running(_)));
        assert!(!dropped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_claim_slower_than_the_window_drops_the_call() {
        let dropped = Arc::new(AtomicBool::new(false));
        let slow_claim = async {
            tokio::time::sleep(SPECULATION_WINDOW * 3).await;
            true
        };
        let (granted, first) = claim_while(slow_claim, call(&dropped)).await;
        assert!(granted);
        assert!(matches!(first, FirstCall::Dropped));
        assert!(dropped.load(Ordering::SeqCst));
    }
}
