//! A lean fake Ollama for benchmarking: `/api/chat` streams NDJSON exactly as Ollama does
//! (one object per line, headers sent with the first), with a configurable time to first token, answer length and
//! inter-token delay, and no limit on parallel generations.
//!
//! Unlike the test suite's fake it does nothing else (no tools, no errors, no scheduling), so
//! its own cost stays small next to what it measures. Token `i` is the text `w{i} `, so a
//! client can tell a missing or reordered token from the text alone.

use std::convert::Infallible;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpSocket;
use tokio::time::{Instant, Sleep};

/// The one model the fake has installed.
pub const MODEL: &str = "bench:latest";

/// How the fake generates: set between phases, read by every new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Model load plus prompt processing: nothing, not even headers, is sent meanwhile.
    pub first_token: Duration,
    /// Tokens per answer (at least 1).
    pub tokens: u32,
    /// Delay between two tokens.
    pub gap: Duration,
}

impl Profile {
    /// The answer text a client must receive, token by token.
    pub fn expected_text(&self) -> String {
        (0..self.tokens).map(token).collect()
    }

    /// How long one answer takes to generate.
    pub fn duration(&self) -> Duration {
        self.first_token + self.gap * self.tokens.saturating_sub(1)
    }
}

fn token(i: u32) -> String {
    format!("w{i} ")
}

/// The shared profile, stored as three atomics so requests never take a lock.
#[derive(Debug, Default)]
struct Shared {
    first_token_us: AtomicU64,
    tokens: AtomicU64,
    gap_us: AtomicU64,
}

impl Shared {
    fn profile(&self) -> Profile {
        Profile {
            first_token: Duration::from_micros(self.first_token_us.load(Ordering::Relaxed)),
            tokens: u32::try_from(self.tokens.load(Ordering::Relaxed))
                .unwrap_or(u32::MAX)
                .max(1),
            gap: Duration::from_micros(self.gap_us.load(Ordering::Relaxed)),
        }
    }
}

/// A running fake; it serves until the process ends.
#[derive(Debug, Clone)]
pub struct FakeOllama {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeOllama {
    /// Binds a random loopback port and starts serving (inside a Tokio runtime).
    pub fn start(profile: Profile) -> std::io::Result<Self> {
        // Seadragon opens a connection per concurrent generation, up to 1,000 at once: a
        // backlog deeper than the default 1,024 keeps a burst of connects from being dropped
        // and retried a second later, which would show up as Seadragon's latency.
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(8192)?;
        let fake = Self {
            addr: listener.local_addr()?,
            shared: Arc::default(),
        };
        fake.set(profile);
        let shared = Arc::clone(&fake.shared);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let service =
                    hyper::service::service_fn(move |request| handle(request, Arc::clone(&shared)));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        Ok(fake)
    }

    /// Changes how later requests generate.
    pub fn set(&self, profile: Profile) {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.shared
            .first_token_us
            .store(micros(profile.first_token), Ordering::Relaxed);
        self.shared
            .tokens
            .store(u64::from(profile.tokens), Ordering::Relaxed);
        self.shared
            .gap_us
            .store(micros(profile.gap), Ordering::Relaxed);
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for `SEADRAGON_OLLAMA_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

const JSON: &str = "application/json; charset=utf-8";

#[derive(Deserialize)]
struct ChatBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    stream: Option<bool>,
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ResponseBody>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/") => full(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "Ollama is running",
        ),
        (&Method::GET, "/api/version") => full(StatusCode::OK, JSON, r#"{"version":"0.12.10"}"#),
        (&Method::GET, "/api/tags") => full(StatusCode::OK, JSON, tags()),
        (&Method::POST, "/api/chat") => chat(request, &shared).await,
        _ => full(StatusCode::NOT_FOUND, "text/plain", "404 page not found"),
    };
    Ok(response)
}

fn tags() -> String {
    format!(
        r#"{{"models":[{{"name":"{MODEL}","model":"{MODEL}","modified_at":"2025-05-10T08:06:48.639712648-07:00","size":2019393189,"digest":"a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72","details":{{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"3.2B","quantization_level":"Q4_K_M"}}}}]}}"#
    )
}

async fn chat(request: Request<Incoming>, shared: &Shared) -> Response<ResponseBody> {
    let Ok(body) = request.into_body().collect().await else {
        return full(
            StatusCode::BAD_REQUEST,
            JSON,
            r#"{"error":"unexpected EOF"}"#,
        );
    };
    let Ok(body) = serde_json::from_slice::<ChatBody>(&body.to_bytes()) else {
        return full(StatusCode::BAD_REQUEST, JSON, r#"{"error":"invalid JSON"}"#);
    };
    if body.model.is_empty() {
        return full(
            StatusCode::BAD_REQUEST,
            JSON,
            r#"{"error":"model is required"}"#,
        );
    }
    let profile = shared.profile();
    let started = Instant::now();
    // Ollama sends nothing, not even the status line, until the first token exists.
    tokio::time::sleep(profile.first_token).await;
    let model: Arc<str> = Arc::from(body.model);
    if body.stream == Some(false) {
        // The same absolute schedule as a stream, so both kinds of answer end at the same time.
        tokio::time::sleep_until(started + profile.duration()).await;
        let text = profile.expected_text();
        let json = format!(
            r#"{{"model":"{model}","created_at":"{}","message":{{"role":"assistant","content":"{text}"}},{}}}"#,
            created_at(),
            done_fields(profile.tokens, started.elapsed())
        );
        return full(StatusCode::OK, JSON, json);
    }
    let stream = TokenStream {
        model,
        profile,
        started,
        next: 0,
        sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
    };
    let mut response = Response::new(stream.boxed_unsync());
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// The `done:true` fields of the last object: reason and the six metrics in nanoseconds/counts.
fn done_fields(tokens: u32, total: Duration) -> String {
    let total_ns = total.as_nanos();
    format!(
        r#""done":true,"done_reason":"stop","total_duration":{total_ns},"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546,"eval_count":{tokens},"eval_duration":{}"#,
        total_ns.saturating_sub(343_880)
    )
}

/// The streamed answer: token `i` is due at `first token + i × gap` after the request (a
/// fixed schedule, so a slow reader does not stretch the generation), then the final object.
struct TokenStream {
    model: Arc<str>,
    profile: Profile,
    started: Instant,
    next: u32,
    sleep: Pin<Box<Sleep>>,
}

impl Body for TokenStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.next > this.profile.tokens {
            return Poll::Ready(None);
        }
        if this.next > 0 && this.next < this.profile.tokens {
            let due = this.started + this.profile.first_token + this.profile.gap * this.next;
            if Instant::now() < due {
                this.sleep.as_mut().reset(due);
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
        let line = if this.next < this.profile.tokens {
            format!(
                "{{\"model\":\"{}\",\"created_at\":\"{}\",\"message\":{{\"role\":\"assistant\",\"content\":\"{}\"}},\"done\":false}}\n",
                this.model,
                created_at(),
                token(this.next)
            )
        } else {
            format!(
                "{{\"model\":\"{}\",\"created_at\":\"{}\",\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},{}}}\n",
                this.model,
                created_at(),
                done_fields(this.profile.tokens, this.started.elapsed())
            )
        };
        this.next += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(line)))))
    }

    fn is_end_stream(&self) -> bool {
        self.next > self.profile.tokens
    }
}

/// Now as Go's RFC 3339 with nanoseconds and trailing zeros trimmed, in UTC.
fn created_at() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let nanos = format!("{:09}", now.subsec_nanos());
    let nanos = nanos.trim_end_matches('0');
    let fraction = if nanos.is_empty() {
        String::new()
    } else {
        format!(".{nanos}")
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_map_to_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_387), (2025, 10, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn expected_text_has_one_word_per_token() {
        let p = Profile {
            first_token: Duration::ZERO,
            tokens: 3,
            gap: Duration::ZERO,
        };
        assert_eq!(p.expected_text(), "w0 w1 w2 ");
    }
}
