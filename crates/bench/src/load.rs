//! The load generator: closed-loop virtual users on loopback, one HTTP/1 connection each (hyper
//! directly, so the client's own cost stays small), bounded in count and time.
//!
//! A user sends chat requests one after another until the phase's deadline and records, per
//! request, the time to the first token, the gaps between tokens, the total time, and whether
//! the answer was complete: status 200, every token in order, and for OpenAI streams the final
//! `data: [DONE]`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::parse::{self, Event};

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections opened at once while users connect (keeps the accept backlog from overflowing).
const CONNECTS_IN_FLIGHT: usize = 64;

/// Which API the target speaks.
#[derive(Debug, Clone)]
pub enum Api {
    /// Ollama's native `/api/chat` (the baseline).
    Ollama,
    /// Seadragon's `/v1/chat/completions` with this key.
    OpenAi(Arc<str>),
}

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// Loopback address.
    pub addr: SocketAddr,
    /// What it speaks.
    pub api: Api,
}

impl Target {
    fn request(&self, stream: bool, prompt: &str) -> Request<Full<Bytes>> {
        let (path, model) = match self.api {
            Api::Ollama => ("/api/chat", crate::backend::MODEL),
            Api::OpenAi(_) => ("/v1/chat/completions", "bench"),
        };
        let body = format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"{prompt}"}}],"stream":{stream}}}"#
        );
        let mut builder = Request::post(path)
            .header(HOST, self.addr.to_string())
            .header(CONTENT_TYPE, "application/json");
        if let Api::OpenAi(key) = &self.api {
            builder = builder.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        // The parts above are all valid header values; an error would be a bug in this file.
        builder
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    }
}

/// One phase of load.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Virtual users, each with its own connection.
    pub users: usize,
    /// Streamed (SSE / NDJSON) or one JSON answer.
    pub stream: bool,
    /// How long users keep sending (ignored when `once`).
    pub duration: Duration,
    /// Each user sends one request first that is not recorded.
    pub warmup: bool,
    /// Each user sends exactly one request.
    pub once: bool,
    /// User `i` of `n` starts `i/n` of this late. Closed-loop users with a fixed answer time
    /// would otherwise send in lockstep forever, and every request would arrive in a burst of
    /// `users` at the same instant: a herd no real client population produces.
    pub stagger: Duration,
    /// Upper bound of recorded requests, whatever the duration.
    pub max_requests: u64,
}

/// What a phase measured. Times are in microseconds.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests that completed correctly.
    pub ok: u64,
    /// Non-200 answers, broken or incomplete streams, wrong text, timeouts.
    pub errors: u64,
    /// Tokens that should have arrived and did not.
    pub missing_tokens: u64,
    /// Tokens received.
    pub tokens: u64,
    /// Time to the first token of each streamed request.
    pub ttft: Vec<u32>,
    /// Gaps between consecutive token frames.
    pub gaps: Vec<u32>,
    /// Total time of each request.
    pub totals: Vec<u32>,
    /// From the start signal to the end of the last request.
    pub elapsed: Duration,
    /// Users that could not connect.
    pub connect_failures: u64,
}

impl Outcome {
    fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.missing_tokens += other.missing_tokens;
        self.tokens += other.tokens;
        self.ttft.extend(other.ttft);
        self.gaps.extend(other.gaps);
        self.totals.extend(other.totals);
        self.connect_failures += other.connect_failures;
    }
}

/// The answer every request must receive.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The prompt that asks for it (plain text, sent inside a JSON string as it is).
    pub prompt: Arc<str>,
    /// The full text.
    pub text: Arc<str>,
    /// Its number of tokens.
    pub tokens: u32,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

async fn connect(addr: SocketAddr) -> Option<Conn> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    tcp.set_nodelay(true).ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(Conn { sender })
}

/// Runs `phase` against `target` and gathers what every user measured.
pub async fn run(target: &Target, phase: &Phase, expected: &Expected) -> Outcome {
    let conns: Vec<Option<Conn>> = futures_util::stream::iter(0..phase.users)
        .map(|_| connect(target.addr))
        .buffer_unordered(CONNECTS_IN_FLIGHT)
        .collect()
        .await;
    let barrier = Arc::new(Barrier::new(phase.users + 1));
    let recorded = Arc::new(AtomicU64::new(0));
    let mut users = tokio::task::JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let offset = phase.stagger.mul_f64(i as f64 / phase.users as f64);
        let user = User {
            offset,
            target: target.clone(),
            phase: phase.clone(),
            expected: expected.clone(),
            barrier: Arc::clone(&barrier),
            recorded: Arc::clone(&recorded),
        };
        users.spawn(user.run(conn));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut outcome = Outcome::default();
    while let Some(done) = users.join_next().await {
        if let Ok(user_outcome) = done {
            outcome.merge(user_outcome);
        } else {
            outcome.errors += 1;
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

struct User {
    offset: Duration,
    target: Target,
    phase: Phase,
    expected: Expected,
    barrier: Arc<Barrier>,
    recorded: Arc<AtomicU64>,
}

impl User {
    async fn run(self, conn: Option<Conn>) -> Outcome {
        let mut outcome = Outcome::default();
        let mut conn = conn;
        if self.phase.warmup
            && let Some(c) = conn.as_mut()
        {
            let mut ignored = Outcome::default();
            if !self.once(c, &mut ignored).await {
                conn = None;
            }
        }
        // Every user waits here, connected or not, so the phase starts for all at once.
        self.barrier.wait().await;
        let deadline = Instant::now() + self.phase.duration;
        tokio::time::sleep(self.offset).await;
        loop {
            if conn.is_none() {
                conn = connect(self.target.addr).await;
            }
            let Some(c) = conn.as_mut() else {
                outcome.connect_failures += 1;
                break;
            };
            if self.recorded.fetch_add(1, Ordering::Relaxed) >= self.phase.max_requests {
                break;
            }
            if !self.once(c, &mut outcome).await {
                // The connection may be unusable after an error: open a fresh one.
                conn = None;
            }
            if self.phase.once || Instant::now() >= deadline {
                break;
            }
        }
        outcome
    }

    /// One request; records it and says whether the connection can be reused.
    async fn once(&self, conn: &mut Conn, outcome: &mut Outcome) -> bool {
        let started = Instant::now();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(conn, started)).await;
        match result {
            Ok(Ok(answer)) => {
                outcome.tokens += u64::from(answer.tokens);
                outcome.missing_tokens +=
                    u64::from(self.expected.tokens.saturating_sub(answer.tokens));
                if answer.complete && answer.text == *self.expected.text {
                    outcome.ok += 1;
                    outcome.totals.push(micros(started.elapsed()));
                    if let Some(ttft) = answer.ttft {
                        outcome.ttft.push(ttft);
                    }
                    outcome.gaps.extend(answer.gaps);
                } else {
                    outcome.errors += 1;
                }
                true
            }
            Ok(Err(())) | Err(_) => {
                outcome.errors += 1;
                outcome.missing_tokens += u64::from(self.expected.tokens);
                false
            }
        }
    }

    async fn exchange(&self, conn: &mut Conn, started: Instant) -> Result<Answer, ()> {
        conn.sender.ready().await.map_err(drop)?;
        let response = conn
            .sender
            .send_request(
                self.target
                    .request(self.phase.stream, &self.expected.prompt),
            )
            .await
            .map_err(drop)?;
        let status = response.status();
        let mut body = response.into_body();
        if status != StatusCode::OK {
            // Read the error to the end so the connection stays usable.
            let _ = body.collect().await;
            return Ok(Answer::default());
        }
        if !self.phase.stream {
            let bytes = body.collect().await.map_err(drop)?.to_bytes();
            let text = match self.target.api {
                Api::Ollama => parse::ollama_answer(&bytes),
                Api::OpenAi(_) => parse::openai_answer(&bytes),
            };
            let Some(text) = text else {
                return Ok(Answer::default());
            };
            return Ok(Answer {
                tokens: count_tokens(&text),
                text,
                complete: true,
                ..Answer::default()
            });
        }
        let mut answer = Answer {
            text: String::with_capacity(self.expected.text.len()),
            ..Answer::default()
        };
        let mut splitter = parse::Splitter::new(match self.target.api {
            Api::Ollama => parse::Framing::Ndjson,
            Api::OpenAi(_) => parse::Framing::Sse,
        });
        let mut last: Option<Instant> = None;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(drop)?.into_data() else {
                continue;
            };
            let now = Instant::now();
            splitter.push(&data);
            while let Some(event) = splitter.next_event() {
                let (text, done) = match event {
                    Event::Token(text) => (text, false),
                    Event::LastToken(text) => (text, true),
                    Event::Done => {
                        answer.complete = true;
                        continue;
                    }
                    Event::Error => {
                        answer.failed = true;
                        continue;
                    }
                    Event::Other => continue,
                };
                match last {
                    None => answer.ttft = Some(micros(now - started)),
                    Some(previous) => answer.gaps.push(micros(now - previous)),
                }
                last = Some(now);
                answer.text.push_str(&text);
                answer.complete |= done;
            }
        }
        answer.complete &= !answer.failed;
        answer.tokens = count_tokens(&answer.text);
        Ok(answer)
    }
}

/// Each fake token is one word followed by a space.
fn count_tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

#[derive(Debug, Default)]
struct Answer {
    text: String,
    tokens: u32,
    complete: bool,
    failed: bool,
    ttft: Option<u32>,
    gaps: Vec<u32>,
}
