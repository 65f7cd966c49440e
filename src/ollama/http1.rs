//! A lean HTTP/1.1 client for the one call that carries every token: a streamed `/api/chat` or
//! `/api/generate`. The job's own task writes the request and reads the answer from the
//! socket, and a connection read to its end goes back to a small keep-alive pool.
//!
//! Why not reqwest here (it serves every other call): its pooled hyper client gives each
//! connection a task of its own, an 8 KB request-channel block, an 8 KB write buffer and up
//! to two 8 KB read buffers, about 27 KB per open stream at 1,000 streams (heaptrack), and it
//! hands every NDJSON chunk from that task to the job's task through a channel, a wake-up
//! per token. Here a stream holds a socket and one small read buffer.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Url;
use tokio::net::TcpStream;

use super::OllamaError;
use super::body::{Body, FIRST_READ, Framing, read_some};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per Ollama (one per slot that ran at once is plenty).
const MAX_IDLE: usize = 1024;
/// Longest response head accepted, and most headers in it.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// Idle keep-alive connections to one Ollama, most recently used last.
#[derive(Debug, Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

impl Pool {
    /// Keeps `io` for a later request.
    pub(super) fn put(&self, io: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((io, Instant::now()));
        }
    }

    /// The most recently used idle connection the server has not closed meanwhile.
    fn take(&self) -> Option<TcpStream> {
        loop {
            let (io, since) = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()?;
            // An idle connection has nothing to read: EOF or stray bytes mean it is unusable.
            let mut probe = [0u8; 1];
            let quiet =
                matches!(io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
            if quiet && since.elapsed() < IDLE_TIMEOUT {
                return Some(io);
            }
        }
    }
}

/// The status and body of one answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Body,
}

/// Why one attempt on one connection did not get an answer.
enum Failure {
    /// A reused connection the server had closed before our request reached it: try a new one.
    Stale,
    Failed(OllamaError),
}

/// Sends `POST`s with JSON bodies to one Ollama server.
#[derive(Debug, Clone)]
pub struct StreamClient {
    /// The host to connect to (an IPv6 address without brackets).
    host: String,
    port: u16,
    /// The `Host` header.
    authority: String,
    base: Url,
    pool: Arc<Pool>,
}

impl StreamClient {
    /// A client for the server at `base`, which must be an `http://` URL.
    pub fn new(base: &Url) -> Result<Self, String> {
        if base.scheme() != "http" {
            return Err(format!("{base}: only http:// is supported"));
        }
        let Some(authority_host) = base.host_str() else {
            return Err(format!("{base}: no host"));
        };
        // An IPv6 address is bracketed in a URL and bare in a socket address.
        let host = authority_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = base.port_or_known_default().unwrap_or(80);
        let authority = match base.port() {
            Some(port) => format!("{authority_host}:{port}"),
            None => authority_host.to_owned(),
        };
        Ok(Self {
            host,
            port,
            authority,
            base: base.clone(),
            pool: Arc::default(),
        })
    }

    /// The request target of `path` below the base URL, as `Url::join` resolves it.
    pub fn target(&self, path: &str) -> String {
        let url = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// `POST target` with a JSON `body`; resolves once the response head arrived.
    pub async fn post(&self, target: &str, body: &[u8]) -> Result<Answer, OllamaError> {
        let mut request = format!(
            "POST {target} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             accept: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
            self.authority,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        if let Some(io) = self.pool.take() {
            match self.exchange(io, &request, true).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Failed(error)) => return Err(error),
                Err(Failure::Stale) => {}
            }
        }
        let io = self.connect().await?;
        match self.exchange(io, &request, false).await {
            Ok(answer) => Ok(answer),
            Err(Failure::Failed(error)) => Err(error),
            Err(Failure::Stale) => Err(self.unreachable("the connection closed before an answer")),
        }
    }

    async fn connect(&self) -> Result<TcpStream, OllamaError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let io = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(self.unreachable(&e.to_string())),
            Err(_) => return Err(self.unreachable("connecting timed out")),
        };
        // Each NDJSON request is one write, but the answer's small frames must not wait.
        let _ = io.set_nodelay(true);
        Ok(io)
    }

    fn unreachable(&self, reason: &str) -> OllamaError {
        OllamaError::Unreachable {
            url: self.base.to_string(),
            reason: reason.to_owned(),
        }
    }

    /// Writes `request` on `io` and reads the response head.
    async fn exchange(
        &self,
        io: TcpStream,
        request: &[u8],
        reused: bool,
    ) -> Result<Answer, Failure> {
        let broke = |e: io::Error, nothing_read: bool| {
            if reused && nothing_read {
                Failure::Stale
            } else {
                Failure::Failed(self.unreachable(&e.to_string()))
            }
        };
        write_all(&io, request).await.map_err(|e| broke(e, true))?;
        let mut raw = Vec::with_capacity(FIRST_READ);
        loop {
            let read = read_some(&io, &mut raw)
                .await
                .map_err(|e| broke(e, raw.is_empty()))?;
            if read == 0 {
                let closed =
                    io::Error::new(io::ErrorKind::UnexpectedEof, "closed before an answer");
                return Err(broke(closed, raw.is_empty()));
            }
            if let Some(head) = parse_head(&raw).map_err(Failure::Failed)? {
                let body = Body::new(
                    io,
                    raw,
                    head.length,
                    head.framing,
                    head.reusable,
                    Arc::clone(&self.pool),
                );
                return Ok(Answer {
                    status: head.status,
                    body,
                });
            }
            if raw.len() > MAX_HEAD {
                return Err(Failure::Failed(protocol("the response head is too long")));
            }
            if raw.capacity() == raw.len() {
                raw.reserve(raw.capacity());
            }
        }
    }
}

/// What the response head says.
struct Head {
    status: u16,
    /// Bytes of `raw` the head took (interim 1xx answers included).
    length: usize,
    framing: Framing,
    reusable: bool,
}

/// The final response head at the start of `raw`, once it arrived whole.
fn parse_head(raw: &[u8]) -> Result<Option<Head>, OllamaError> {
    let mut start = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let length = match response.parse(&raw[start..]) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(protocol(&format!("invalid response head: {e}"))),
        };
        let status = response.code.unwrap_or_default();
        start += length;
        // `100 Continue` and other interim answers come before the real one.
        if (100..200).contains(&status) {
            continue;
        }
        let mut chunked = None;
        let mut content_length = None;
        let mut reusable = response.version == Some(1);
        for header in response.headers.iter() {
            let value = String::from_utf8_lossy(header.value);
            let name = header.name;
            if name.eq_ignore_ascii_case("transfer-encoding") {
                let last = value.rsplit(',').next().unwrap_or_default().trim();
                chunked = Some(last.eq_ignore_ascii_case("chunked"));
            } else if name.eq_ignore_ascii_case("content-length") {
                let length = value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| protocol(&format!("invalid Content-Length {value:?}")))?;
                content_length = Some(length);
            } else if name.eq_ignore_ascii_case("connection")
                && value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                reusable = false;
            }
        }
        // A transfer coding wins over a length; a body coded otherwise ends with the connection.
        let mut framing = match (chunked, content_length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(length)) => Framing::Length(length),
        };
        if status == 204 || status == 304 {
            framing = Framing::Length(0);
        }
        return Ok(Some(Head {
            status,
            length: start,
            framing,
            reusable,
        }));
    }
}

fn protocol(message: &str) -> OllamaError {
    OllamaError::Protocol(message.to_owned())
}

async fn write_all(io: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        io.writable().await?;
        match io.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
