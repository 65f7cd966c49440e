//! Ollama's streamed answers: NDJSON objects split on newlines across network chunks. Each
//! byte is scanned once (a long line arriving in many chunks is not re-scanned from its start
//! at every chunk) and a line is bounded, so a broken or hostile Ollama cannot make the worker
//! buffer without limit.

use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;

use super::OllamaError;
use super::wire::ChatChunk;

/// Longest NDJSON line accepted. Ollama's lines are one token or one tool call each; a
/// final line carries metrics. A line past this fails the job.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// The NDJSON objects of one `/api/chat` or `/api/generate` answer.
pub struct ChatStream {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
    /// Bytes at the start of `buffer` known to hold no newline.
    scanned: usize,
    ended: bool,
}

impl ChatStream {
    /// Reads objects from `body`.
    pub fn new(body: BoxStream<'static, reqwest::Result<bytes::Bytes>>) -> Self {
        Self {
            body,
            buffer: Vec::new(),
            scanned: 0,
            ended: false,
        }
    }

    /// The next object; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Result<ChatChunk, OllamaError>> {
        loop {
            if let Some(at) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
                let newline = self.scanned + at;
                let line: Vec<u8> = self.buffer.drain(..=newline).collect();
                self.scanned = 0;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(parse(&line));
            }
            self.scanned = self.buffer.len();
            if self.buffer.len() > MAX_LINE_BYTES {
                self.fail();
                return Some(Err(OllamaError::Protocol(format!(
                    "an NDJSON line from Ollama exceeded {MAX_LINE_BYTES} bytes"
                ))));
            }
            if self.ended {
                if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let rest = std::mem::take(&mut self.buffer);
                self.scanned = 0;
                return Some(parse(&rest));
            }
            match self.body.next().await.transpose() {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) => self.ended = true,
                Err(e) => {
                    self.fail();
                    return Some(Err(OllamaError::Protocol(format!(
                        "the connection to Ollama broke mid-answer: {e}"
                    ))));
                }
            }
        }
    }

    /// Ends the stream after an error: nothing more is read or returned.
    fn fail(&mut self) {
        self.ended = true;
        self.buffer = Vec::new();
        self.scanned = 0;
    }
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("buffered", &self.buffer.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

fn parse(line: &[u8]) -> Result<ChatChunk, OllamaError> {
    serde_json::from_slice(line)
        .map_err(|e| OllamaError::Protocol(format!("invalid NDJSON line from Ollama: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stream(chunks: Vec<Vec<u8>>) -> ChatStream {
        let chunks: Vec<reqwest::Result<Bytes>> =
            chunks.into_iter().map(|c| Ok(Bytes::from(c))).collect();
        ChatStream::new(futures_util::stream::iter(chunks).boxed())
    }

    const LINE: &str = r#"{"model":"m","created_at":"2025-05-05T00:00:00Z","message":{"role":"assistant","content":"hi"},"done":false}"#;

    #[tokio::test]
    async fn lines_split_anywhere_across_chunks_come_out_whole() {
        let text = format!("{LINE}\n\n{LINE}\n{LINE}");
        let bytes = text.into_bytes();
        let chunks: Vec<Vec<u8>> = bytes.chunks(7).map(<[u8]>::to_vec).collect();
        let mut s = stream(chunks);
        for _ in 0..3 {
            assert_eq!(s.next().await.unwrap().unwrap().message.content, "hi");
        }
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_line_past_the_limit_fails_the_stream_and_ends_it() {
        let chunk = vec![b'x'; 64 * 1024];
        let chunks = vec![chunk; MAX_LINE_BYTES / (64 * 1024) + 2];
        let mut s = stream(chunks);
        let error = s.next().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("exceeded"), "{error}");
        assert!(s.next().await.is_none());
    }
}
