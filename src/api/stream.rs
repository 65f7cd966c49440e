//! Streamed answers, whatever their wire format: each API supplies a [`Render`] (OpenAI SSE
//! chunks, Responses API events, Ollama NDJSON) and this module runs the stream.
//!
//! While the job waits, formats with comments get keep-alives
//! (`: queued position=N tier=pro eta_secs=E`) so proxies and SDKs do not time out. The status
//! line is held back until the first real event or the first keep-alive is due: a job that
//! fails before that (unknown model on Ollama, Ollama down) still gets a proper HTTP error.
//! After it, errors are written in-band by the format, then the stream ends. NDJSON has no
//! comments, so like Ollama itself it sends nothing, headers included, until the first event.
//! The body owns the job's ticket, so a client that disconnects cancels its job.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;
use super::submit::Admitted;
use crate::limits::InFlight;
use crate::queue::{JobEvent, JobQueue, JobStanding, JobTicket};

/// How one API writes the events of a job.
pub trait Render: Send + 'static {
    /// The response's content type.
    const CONTENT_TYPE: &'static str;

    /// Appends the frames of one event of the answer (`Delta`, `Embeddings`, `Finished`;
    /// never `Started` or `Failed`). Returns true when the answer is complete.
    fn event(&mut self, event: JobEvent, out: &mut VecDeque<Bytes>) -> bool;

    /// The in-band error that ends a stream already answered 200.
    fn error(&mut self, error: &ApiError) -> Bytes;

    /// A comment frame carrying `text`; `None` for formats without comments.
    fn comment(&self, text: &str) -> Option<Bytes>;
}

/// Starts the streamed answer of a queued job.
pub async fn respond<R: Render>(
    state: &AppState,
    admitted: Admitted,
    render: R,
) -> Result<Response, ApiError> {
    let Admitted {
        mut ticket,
        in_flight,
        tier,
    } = admitted;
    let keepalives = render.comment("").is_some();
    let mut running = false;
    let first = {
        let deadline = tokio::time::sleep(if keepalives {
            state.keepalive
        } else {
            // Effectively never: the first event decides.
            Duration::from_secs(86_400 * 365)
        });
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
    let mut stream = Stream {
        render,
        ticket,
        queue: Arc::clone(&state.queue),
        tier,
        keepalive: state.keepalive,
        running,
        pending: VecDeque::new(),
        done: false,
        hard_stop: state.hard_stop.clone(),
        _in_flight: in_flight,
    };
    match first {
        Some(event) => stream.on_event(Some(event)),
        None => stream.push_keepalive(),
    }
    let body = Body::from_stream(futures_util::stream::unfold(
        stream,
        |mut stream| async move {
            let frame = stream.next_frame().await?;
            Some((Ok::<_, std::convert::Infallible>(frame), stream))
        },
    ));
    Ok((
        [
            (CONTENT_TYPE, R::CONTENT_TYPE),
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

struct Stream<R> {
    render: R,
    ticket: JobTicket,
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

impl<R: Render> Stream<R> {
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
                () = tokio::time::sleep(self.keepalive) => self.push_keepalive(),
                () = self.hard_stop.cancelled() => self.fail(&shutting_down()),
            }
        }
    }

    fn on_event(&mut self, event: Option<JobEvent>) {
        match event {
            Some(JobEvent::Started { .. }) => self.running = true,
            Some(JobEvent::Failed(failure)) => self.fail(&ApiError::from(failure)),
            Some(event) => self.done = self.render.event(event, &mut self.pending),
            None => self.fail(&ApiError::Unavailable(
                "the worker running this request stopped".into(),
            )),
        }
    }

    fn fail(&mut self, error: &ApiError) {
        let frame = self.render.error(error);
        self.pending.push_back(frame);
        self.done = true;
    }

    fn push_keepalive(&mut self) {
        let text = match self.queue.standing(self.ticket.id()) {
            Some(standing) if !self.running => keepalive(&self.tier, standing),
            _ => "running".to_owned(),
        };
        if let Some(frame) = self.render.comment(&text) {
            self.pending.push_back(frame);
        }
    }
}

/// `queued position=N tier=T eta_secs=E`; the estimate is left out on a cold system.
fn keepalive(tier: &str, standing: JobStanding) -> String {
    let position = standing.position;
    match standing.eta {
        Some(eta) => format!(
            "queued position={position} tier={tier} eta_secs={}",
            eta.as_secs_f64().ceil()
        ),
        None => format!("queued position={position} tier={tier}"),
    }
}

/// One SSE `data:` frame.
pub fn sse_data(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// One SSE comment frame.
pub fn sse_comment(text: &str) -> Bytes {
    Bytes::from(format!(": {text}\n\n"))
}

/// The end of an OpenAI SSE stream.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";
