//! Ollama's streamed answers: NDJSON objects split on newlines across network chunks. Each
//! byte is scanned once (a long line arriving in many chunks is not re-scanned from its start
//! at every chunk) and a line is bounded, so a broken or hostile Ollama cannot make the worker
//! buffer without limit.

use super::OllamaError;
use super::body::Body;
use super::wire::ChatChunk;

/// Longest NDJSON line accepted. Ollama's lines are one token or one tool call each; a
/// final line carries metrics. A line past this fails the job.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// How long [`ChatStream::finish`] waits for the end of a finished answer's body.
const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// The NDJSON objects of one `/api/chat` or `/api/generate` answer.
pub struct ChatStream {
    body: Body,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts: lines are parsed in place and the buffer is
    /// compacted only when it runs dry, not shifted after every line (a network chunk often
    /// holds dozens of lines).
    start: usize,
    /// Bytes after `start` known to hold no newline.
    scanned: usize,
    ended: bool,
}

impl ChatStream {
    /// Reads objects from `body`.
    pub fn new(body: Body) -> Self {
        Self {
            body,
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            ended: false,
        }
    }

    /// The next object; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Result<ChatChunk, OllamaError>> {
        loop {
            if let Some(line) = self.next_line() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(parse(line));
            }
            if self.buffer.len() - self.start > MAX_LINE_BYTES {
                self.fail();
                return Some(Err(OllamaError::Protocol(format!(
                    "an NDJSON line from Ollama exceeded {MAX_LINE_BYTES} bytes"
                ))));
            }
            if self.ended {
                let rest = &self.buffer[self.start..];
                if rest.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let parsed = parse(rest);
                self.fail();
                return Some(parsed);
            }
            // Only a partial line is left: move it to the front before reading more.
            self.buffer.drain(..self.start);
            self.start = 0;
            match self.body.read(&mut self.buffer).await {
                Ok(true) => {}
                Ok(false) => self.ended = true,
                Err(e) => {
                    self.fail();
                    return Some(Err(OllamaError::Protocol(format!(
                        "the connection to Ollama broke mid-answer: {e}"
                    ))));
                }
            }
        }
    }

    /// Reads what follows the last object (Ollama's closing empty chunk, which has usually
    /// arrived with it) so that the connection goes back to the pool for the next job: a
    /// connection dropped here is a new TCP connection for the next one. Gives up after
    /// [`LINGER`], closing the connection.
    pub async fn finish(mut self) {
        let drain = async {
            while let Ok(true) = self.body.read(&mut self.buffer).await {
                self.buffer.clear();
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }

    /// The next complete line in the buffer, newline excluded.
    fn next_line(&mut self) -> Option<&[u8]> {
        let unread = &self.buffer[self.start..];
        let Some(at) = unread[self.scanned..].iter().position(|&b| b == b'\n') else {
            self.scanned = unread.len();
            return None;
        };
        let line = self.start..self.start + self.scanned + at;
        self.start = line.end + 1;
        self.scanned = 0;
        Some(&self.buffer[line])
    }

    /// Ends the stream after an error: nothing more is read or returned.
    fn fail(&mut self) {
        self.ended = true;
        self.buffer = Vec::new();
        self.start = 0;
        self.scanned = 0;
    }
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("buffered", &(self.buffer.len() - self.start))
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

fn parse(line: &[u8]) -> Result<ChatChunk, OllamaError> {
    serde_json::from_slice(line)
        .map_err(|e| OllamaError::Protocol(format!("invalid NDJSON line from Ollama: {e}")))
}
