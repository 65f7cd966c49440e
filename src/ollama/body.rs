//! The body of one HTTP/1.1 answer from Ollama, read straight from its socket by the task that
//! consumes it: chunked (how Ollama streams), with a `Content-Length`, or until the server
//! closes. A body read to its end hands its connection back to the pool.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::http1::Pool;

/// A connection's first read buffer. Ollama writes one NDJSON object per chunk (about 150
/// bytes with a token), and a stream usually finds one or two waiting: an open stream keeps
/// only this much (memory per open stream is a floor of the product).
pub(super) const FIRST_READ: usize = 1024;
/// A read that fills the buffer doubles it, up to this: a backlog is then read in fewer calls.
const MAX_READ: usize = 64 * 1024;

/// Longest chunk-size line or trailer line accepted (a real one is a few bytes).
const MAX_LINE: usize = 4096;

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`: this many bytes.
    Length(u64),
    /// Neither: the body ends when the server closes the connection.
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, expecting its CRLF.
    DataEnd,
    /// After the last (empty) chunk, reading trailer lines up to the empty one.
    Trailers,
    /// Plain data counted by `Content-Length`, this many bytes left.
    Counted(u64),
    /// Plain data up to the close of the connection.
    ToClose,
    Done,
}

/// An answer's body.
#[derive(Debug)]
pub struct Body {
    io: Option<TcpStream>,
    /// Bytes read from the socket and not decoded yet start at `raw[pos]`.
    raw: Vec<u8>,
    pos: usize,
    state: State,
    /// The connection may carry another request once this body is read to its end.
    reusable: bool,
    pool: Option<Arc<Pool>>,
}

impl Body {
    /// A body read from `io`, of which `raw[pos..]` already arrived with the head.
    pub(super) fn new(
        io: TcpStream,
        raw: Vec<u8>,
        pos: usize,
        framing: Framing,
        reusable: bool,
        pool: Arc<Pool>,
    ) -> Self {
        let state = match framing {
            Framing::Chunked => State::Size,
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Counted(n),
            Framing::UntilClose => State::ToClose,
        };
        let mut body = Self {
            io: Some(io),
            raw,
            pos,
            state,
            reusable: reusable && framing != Framing::UntilClose,
            pool: Some(pool),
        };
        if body.state == State::Done {
            body.release();
        }
        body
    }

    /// Appends the next decoded bytes to `out`; `Ok(false)` once the body has ended.
    pub async fn read(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            let before = out.len();
            self.decode(out)?;
            if out.len() > before {
                return Ok(true);
            }
            if self.state == State::Done {
                self.release();
                return Ok(false);
            }
            self.fill().await?;
        }
    }

    /// Reads the whole rest of the body, refusing one longer than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        while self.read(&mut all).await? {
            if all.len() > limit {
                return Err(invalid(format!("an answer body exceeded {limit} bytes")));
            }
        }
        Ok(all)
    }

    /// Reads more bytes from the socket after the undecoded ones.
    async fn fill(&mut self) -> io::Result<()> {
        let Some(io) = self.io.as_ref() else {
            return Err(invalid("the answer ended early".to_owned()));
        };
        self.raw.drain(..self.pos);
        self.pos = 0;
        if self.raw.capacity() - self.raw.len() < FIRST_READ / 4 {
            self.raw.reserve(FIRST_READ);
        }
        let spare = self.raw.capacity() - self.raw.len();
        let read = read_some(io, &mut self.raw).await?;
        if read == spare && self.raw.capacity() < MAX_READ {
            self.raw.reserve(self.raw.capacity());
        }
        if read > 0 {
            return Ok(());
        }
        self.reusable = false;
        self.io = None;
        if self.state == State::ToClose {
            self.state = State::Done;
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "Ollama closed the connection mid-answer",
        ))
    }

    /// Decodes what `raw` holds into `out`, as far as it goes.
    fn decode(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let available = &self.raw[self.pos..];
            match self.state {
                State::Done => return Ok(()),
                State::ToClose => {
                    out.extend_from_slice(available);
                    self.pos = self.raw.len();
                    return Ok(());
                }
                State::Counted(left) | State::Data(left) => {
                    let take = available
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&available[..take]);
                    self.pos += take;
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Counted(_), 0) => State::Done,
                        (State::Counted(_), n) => State::Counted(n),
                        (_, 0) => State::DataEnd,
                        (_, n) => State::Data(n),
                    };
                    if left > 0 {
                        return Ok(());
                    }
                }
                State::Size | State::DataEnd | State::Trailers => {
                    let Some(line) = self.take_line()? else {
                        return Ok(());
                    };
                    let line = &self.raw[line];
                    self.state = match self.state {
                        State::DataEnd if line.is_empty() => State::Size,
                        State::DataEnd => {
                            return Err(invalid("a chunk ran past its size".to_owned()));
                        }
                        State::Size => match chunk_size(line)? {
                            0 => State::Trailers,
                            n => State::Data(n),
                        },
                        _ if line.is_empty() => State::Done,
                        _ => State::Trailers,
                    };
                }
            }
        }
    }

    /// Where the next line of `raw` lies, without its line ending, if a whole one arrived.
    fn take_line(&mut self) -> io::Result<Option<Range<usize>>> {
        let available = &self.raw[self.pos..];
        let Some(end) = available.iter().position(|&b| b == b'\n') else {
            if available.len() > MAX_LINE {
                return Err(invalid("a chunk header line is too long".to_owned()));
            }
            return Ok(None);
        };
        let start = self.pos;
        self.pos += end + 1;
        let cr = usize::from(end > 0 && available[end - 1] == b'\r');
        Ok(Some(start..start + end - cr))
    }

    /// Hands a fully read connection back to the pool, or closes it.
    fn release(&mut self) {
        let io = self.io.take();
        // Bytes past the body's end would be read as the next answer's start.
        let clean = self.reusable && self.pos == self.raw.len();
        if let (Some(io), Some(pool), true) = (io, self.pool.take(), clean) {
            pool.put(io);
        }
        self.raw = Vec::new();
        self.pos = 0;
    }
}

/// A chunk-size line: hexadecimal digits, then optional `;extensions`.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).unwrap_or_default().trim();
    u64::from_str_radix(digits, 16)
        .ok()
        .filter(|_| !digits.starts_with('+'))
        .ok_or_else(|| {
            invalid(format!(
                "invalid chunk size {:?}",
                String::from_utf8_lossy(line)
            ))
        })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// One read into the spare capacity of `buf`; 0 at the end of the stream.
pub(super) async fn read_some(io: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        io.readable().await?;
        match io.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => return result,
        }
    }
}
