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
//!
//! Each wake-up writes everything that is ready: the event that woke the stream, and every
//! event the worker relays while the other ready tasks of this thread take their turn, go out
//! as one body chunk (one write). A fast answer costs one wake-up and one write per burst
//! rather than per token; no token waits for a timer or for a token not yet read from Ollama.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::error::ApiError;
use super::state::AppState;
use super::submit::Admitted;
use crate::limits::InFlight;
use crate::queue::{JobEvent, JobQueue, JobStanding, JobTicket};
use crate::timeline::GatewayStamps;

/// How one API writes the events of a job.
pub trait Render: Send + 'static {
    /// The response's content type.
    const CONTENT_TYPE: &'static str;

    /// Appends the frames of one event of the answer (`Delta`, `Embeddings`, `Finished`;
    /// never `Started` or `Failed`). Returns true when the answer is complete.
    fn event(&mut self, event: JobEvent, out: &mut BytesMut) -> bool;

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
        stamps,
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
        silence: Box::pin(tokio::time::sleep(state.keepalive)),
        running,
        pending: BytesMut::new(),
        done: false,
        hard_stop: Box::pin(state.hard_stop.clone().cancelled_owned()),
        stamps,
        first_token_pending: false,
        answered: false,
        _in_flight: in_flight,
    };
    match first {
        Some(event) => {
            stream.on_event(Some(event));
            stream.drain_ready();
        }
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

/// The longest a token waits for others to share its write.
const MAX_HOLD: Duration = Duration::from_micros(200);

/// Bytes after which a burst is written without waiting for more.
const MAX_BURST: usize = 8 * 1024;

struct Stream<R> {
    render: R,
    ticket: JobTicket,
    queue: Arc<dyn JobQueue>,
    tier: String,
    keepalive: Duration,
    /// Fires after `keepalive` without an event. One timer for the whole stream, pushed back
    /// after each burst, instead of a new timer per frame.
    silence: Pin<Box<Sleep>>,
    running: bool,
    /// Frames written and not yet handed to the connection.
    pending: BytesMut,
    done: bool,
    /// Created once: a fresh `cancelled()` per frame would lock the shared token's waiter
    /// list twice per frame, for every stream.
    hard_stop: Pin<Box<WaitForCancellationFutureOwned>>,
    stamps: GatewayStamps,
    /// The first token is in `pending`: stamp it when it leaves.
    first_token_pending: bool,
    /// A token was rendered: the time to the first token is behind us.
    answered: bool,
    /// The key's place among its concurrent requests, held as long as the stream.
    _in_flight: InFlight,
}

impl<R> Drop for Stream<R> {
    fn drop(&mut self) {
        self.stamps.log(self.ticket.id());
    }
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable("the server is shutting down; retry shortly".to_owned())
}

impl<R: Render> Stream<R> {
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if !self.pending.is_empty() {
                if self.first_token_pending {
                    self.first_token_pending = false;
                    self.stamps.first_frame = crate::timeline::stamp();
                }
                return Some(self.pending.split().freeze());
            }
            if self.done {
                return None;
            }
            tokio::select! {
                event = self.ticket.next_event() => {
                    let answered = self.answered;
                    self.on_event(event);
                    self.drain_ready();
                    if answered {
                        self.gather().await;
                    }
                    let next = Instant::now() + self.keepalive;
                    self.silence.as_mut().reset(next);
                }
                () = self.silence.as_mut() => {
                    self.push_keepalive();
                    let next = Instant::now() + self.keepalive;
                    self.silence.as_mut().reset(next);
                }
                () = self.hard_stop.as_mut() => self.fail(&shutting_down()),
            }
        }
    }

    /// Renders every event that has already arrived, so they leave in one write; returns
    /// how many there were.
    fn drain_ready(&mut self) -> usize {
        let mut drained = 0;
        while !self.done {
            let Some(event) = self.ticket.try_next_event() else {
                break;
            };
            self.on_event(Some(event));
            drained += 1;
        }
        drained
    }

    /// While the worker is relaying a burst, lets it go on for a few turns of the scheduler
    /// and takes what it relayed into the same write. Each Ollama object costs the worker a
    /// hand-off from its connection's task, so tokens that arrived together reach this
    /// stream one turn apart; writing at each turn would cost one write, and one TCP
    /// segment, per token. Stops at the first turn that brought nothing (so a lone token,
    /// like each one of a model's paced answer, waits only one turn) or after [`MAX_HOLD`].
    async fn gather(&mut self) {
        let since = std::time::Instant::now();
        while !self.done && self.pending.len() < MAX_BURST && since.elapsed() < MAX_HOLD {
            // A turn of this thread, never a timer: the task runs again once every task
            // that was ready has run.
            super::turn::next_turn().await;
            if self.drain_ready() == 0 {
                return;
            }
        }
    }

    fn on_event(&mut self, event: Option<JobEvent>) {
        match event {
            Some(JobEvent::Started { .. }) => self.running = true,
            Some(JobEvent::Failed(failure)) => self.fail(&ApiError::from(failure)),
            Some(event) => {
                self.answered = true;
                if self.stamps.first_frame.is_none()
                    && self.stamps.queued.is_some()
                    && matches!(event, JobEvent::Delta(_) | JobEvent::Embeddings { .. })
                {
                    self.first_token_pending = true;
                }
                self.done = self.render.event(event, &mut self.pending);
            }
            None => self.fail(&ApiError::Unavailable(
                "the worker running this request stopped".into(),
            )),
        }
    }

    fn fail(&mut self, error: &ApiError) {
        let frame = self.render.error(error);
        self.pending.extend_from_slice(&frame);
        self.done = true;
    }

    fn push_keepalive(&mut self) {
        let text = match self.queue.standing(self.ticket.id()) {
            Some(standing) if !self.running => keepalive(&self.tier, standing),
            _ => "running".to_owned(),
        };
        if let Some(frame) = self.render.comment(&text) {
            self.pending.extend_from_slice(&frame);
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

/// Appends one SSE `data:` frame to `out`.
pub fn push_sse_data(out: &mut BytesMut, json: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// One SSE comment frame.
pub fn sse_comment(text: &str) -> Bytes {
    Bytes::from(format!(": {text}\n\n"))
}

/// The end of an OpenAI SSE stream.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";
