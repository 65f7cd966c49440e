//! The SSE answer: exact `data: <chunk>\n\n` frames, `data: [DONE]`, and comment keep-alives
//! (`: queued position=N tier=pro eta_secs=E`) while the job waits, so proxies and SDKs do not
//! time out.
//!
//! The status line is held back until the first real event or the first keep-alive is due:
//! a job that fails before that (unknown model on Ollama, Ollama down) still gets a proper
//! HTTP error. After it, errors are an in-band `data: {"error": ...}` event, then the end.
//! The body owns the job's ticket, so a client that disconnects cancels its job.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;
use crate::limits::InFlight;
use crate::openai::render::{ResponseMeta, error_event};
use crate::queue::{JobEvent, JobQueue, JobStanding, JobTicket};

/// Starts the SSE answer for a queued job.
pub async fn respond(
    state: &AppState,
    mut ticket: JobTicket,
    meta: ResponseMeta,
    include_usage: bool,
    tier: &str,
    in_flight: InFlight,
) -> Result<Response, ApiError> {
    let mut running = false;
    let first = {
        let deadline = tokio::time::sleep(state.keepalive);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = ticket.next_event() => match event {
                    Some(JobEvent::Started { .. }) => running = true,
                    Some(JobEvent::Failed(failure)) => return Err(failure.into()),
                    None => return Err(ApiError::Unavailable("the worker running this request stopped; retry".into())),
                    Some(event) => break Some(event),
                },
                () = &mut deadline => break None,
                () = state.hard_stop.cancelled() => return Err(shutting_down()),
            }
        }
    };
    let mut sse = SseStream {
        ticket,
        meta,
        include_usage,
        queue: Arc::clone(&state.queue),
        tier: tier.to_owned(),
        keepalive: state.keepalive,
        running,
        pending: VecDeque::new(),
        done: false,
        hard_stop: state.hard_stop.clone(),
        _in_flight: in_flight,
    };
    match first {
        Some(event) => sse.on_event(Some(event)),
        None => {
            let comment = sse.keepalive_comment();
            sse.pending.push_back(comment);
        }
    }
    let body = Body::from_stream(futures_util::stream::unfold(sse, |mut sse| async move {
        let frame = sse.next_frame().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), sse))
    }));
    Ok((
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
            // Tells nginx-style proxies not to buffer the stream.
            (
                axum::http::HeaderName::from_static("x-accel-buffering"),
                "no",
            ),
        ],
        body,
    )
        .into_response())
}

struct SseStream {
    ticket: JobTicket,
    meta: ResponseMeta,
    include_usage: bool,
    queue: Arc<dyn JobQueue>,
    tier: String,
    keepalive: Duration,
    running: bool,
    pending: VecDeque<Bytes>,
    done: bool,
    hard_stop: tokio_util::sync::CancellationToken,
    /// The key's place among its concurrent requests, held as long as the stream.
    _in_flight: InFlight,
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable("the server is shutting down; retry shortly".to_owned())
}

fn data(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

impl SseStream {
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                event = self.ticket.next_event() => self.on_event(event),
                () = tokio::time::sleep(self.keepalive) => {
                    let comment = self.keepalive_comment();
                    self.pending.push_back(comment);
                }
                () = self.hard_stop.cancelled() => self.fail(&shutting_down()),
            }
        }
    }

    fn on_event(&mut self, event: Option<JobEvent>) {
        match event {
            Some(JobEvent::Started { .. }) => self.running = true,
            Some(JobEvent::Delta(delta)) => {
                self.pending.push_back(data(&self.meta.delta_chunk(&delta)));
            }
            Some(JobEvent::Finished {
                finish_reason,
                usage,
            }) => {
                self.pending
                    .push_back(data(&self.meta.finish_chunk(&finish_reason)));
                if self.include_usage {
                    self.pending.push_back(data(&self.meta.usage_chunk(usage)));
                }
                self.pending
                    .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                self.done = true;
            }
            Some(JobEvent::Failed(failure)) => self.fail(&ApiError::from(failure)),
            None => self.fail(&ApiError::Unavailable(
                "the worker running this request stopped".into(),
            )),
        }
    }

    fn fail(&mut self, error: &ApiError) {
        self.pending.push_back(data(&error_event(&error.detail())));
        self.done = true;
    }

    fn keepalive_comment(&self) -> Bytes {
        match self.queue.standing(self.ticket.id()) {
            Some(standing) if !self.running => Bytes::from(keepalive(&self.tier, standing)),
            _ => Bytes::from_static(b": running\n\n"),
        }
    }
}

/// `: queued position=N tier=T eta_secs=E`; the estimate is left out on a cold system.
fn keepalive(tier: &str, standing: JobStanding) -> String {
    let position = standing.position;
    match standing.eta {
        Some(eta) => format!(
            ": queued position={position} tier={tier} eta_secs={}\n\n",
            eta.as_secs_f64().ceil()
        ),
        None => format!(": queued position={position} tier={tier}\n\n"),
    }
}
