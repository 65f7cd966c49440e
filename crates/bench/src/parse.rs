//! Reading answers as a client does: SSE events and NDJSON lines split across network chunks,
//! and the text of non-streamed answers.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// How a stream is framed.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// OpenAI's `data: <json>\n\n` events (comments start with `:`).
    Sse,
    /// Ollama's one JSON object per line.
    Ndjson,
}

/// What one event of a stream means to the benchmark.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Answer text (never empty).
    Token(String),
    /// Answer text on Ollama's final object, which also ends the stream.
    LastToken(String),
    /// The stream ended properly (`data: [DONE]`, or Ollama's `done: true`).
    Done,
    /// An in-band error.
    Error,
    /// Anything else: role-only deltas, finish and usage chunks, keep-alive comments.
    Other,
}

/// Collects bytes and hands out complete events.
#[derive(Debug)]
pub struct Splitter {
    framing: Framing,
    buffer: Vec<u8>,
    /// Where the search for the next separator resumes, so no byte is scanned twice.
    scanned: usize,
}

impl Splitter {
    /// An empty splitter for `framing`.
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            buffer: Vec::new(),
            scanned: 0,
        }
    }

    /// Adds bytes as they arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event, if one is buffered.
    pub fn next_event(&mut self) -> Option<Event> {
        let separator: &[u8] = match self.framing {
            Framing::Sse => b"\n\n",
            Framing::Ndjson => b"\n",
        };
        let from = self.scanned.saturating_sub(separator.len() - 1);
        let Some(at) = self.buffer[from..]
            .windows(separator.len())
            .position(|w| w == separator)
        else {
            self.scanned = self.buffer.len();
            return None;
        };
        let end = from + at;
        let event = match self.framing {
            Framing::Sse => sse_event(&self.buffer[..end]),
            Framing::Ndjson => ndjson_event(&self.buffer[..end]),
        };
        self.buffer.drain(..end + separator.len());
        self.scanned = 0;
        Some(event)
    }
}

#[derive(Deserialize)]
struct OpenAiChunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<OpenAiChoice<'a>>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct OpenAiChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<Content<'a>>,
    #[serde(borrow, default)]
    message: Option<Content<'a>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OllamaObject<'a> {
    #[serde(borrow, default)]
    message: Option<Content<'a>>,
    #[serde(default)]
    done: bool,
    error: Option<IgnoredAny>,
}

fn sse_event(event: &[u8]) -> Event {
    let Some(data) = event.strip_prefix(b"data: ") else {
        // A comment (`: queued ...`) or an empty keep-alive.
        return Event::Other;
    };
    if data == b"[DONE]" {
        return Event::Done;
    }
    match serde_json::from_slice::<OpenAiChunk<'_>>(data) {
        Ok(chunk) if chunk.error.is_none() => chunk
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.delta)
            .and_then(|d| d.content)
            .filter(|t| !t.is_empty())
            .map_or(Event::Other, |t| Event::Token(t.into_owned())),
        _ => Event::Error,
    }
}

fn ndjson_event(line: &[u8]) -> Event {
    match serde_json::from_slice::<OllamaObject<'_>>(line) {
        Ok(object) if object.error.is_none() => {
            let text = object
                .message
                .and_then(|m| m.content)
                .filter(|t| !t.is_empty());
            match (text, object.done) {
                (Some(t), false) => Event::Token(t.into_owned()),
                (Some(t), true) => Event::LastToken(t.into_owned()),
                (None, true) => Event::Done,
                (None, false) => Event::Other,
            }
        }
        _ => Event::Error,
    }
}

/// The text of a `chat.completion` object.
pub fn openai_answer(body: &[u8]) -> Option<String> {
    let chunk: OpenAiChunk<'_> = serde_json::from_slice(body).ok()?;
    chunk
        .choices
        .into_iter()
        .next()?
        .message?
        .content
        .map(Cow::into_owned)
}

/// The text of a non-streamed Ollama answer (which must say `done: true`).
pub fn ollama_answer(body: &[u8]) -> Option<String> {
    let object: OllamaObject<'_> = serde_json::from_slice(body).ok()?;
    if !object.done {
        return None;
    }
    object.message?.content.map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks_come_out_whole() {
        let mut s = Splitter::new(Framing::Sse);
        s.push(b": queued position=0 tier=bench\n\ndata: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"con");
        assert_eq!(s.next_event(), Some(Event::Other));
        assert_eq!(s.next_event(), None);
        s.push(b"tent\":\"w0 \"}}]}\n");
        assert_eq!(s.next_event(), None);
        s.push(b"\ndata: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n");
        assert_eq!(s.next_event(), Some(Event::Token("w0 ".into())));
        assert_eq!(s.next_event(), Some(Event::Error));
        assert_eq!(s.next_event(), Some(Event::Done));
        assert_eq!(s.next_event(), None);
    }

    #[test]
    fn ndjson_lines_give_tokens_then_done() {
        let mut s = Splitter::new(Framing::Ndjson);
        s.push(b"{\"message\":{\"role\":\"assistant\",\"content\":\"w0 \"},\"done\":false}\n{\"message\":{\"content\":\"\"},\"done\":true}\n");
        assert_eq!(s.next_event(), Some(Event::Token("w0 ".into())));
        assert_eq!(s.next_event(), Some(Event::Done));
    }

    #[test]
    fn whole_answers_give_their_text() {
        let body =
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"w0 w1 "}}]}"#;
        assert_eq!(openai_answer(body).as_deref(), Some("w0 w1 "));
        assert_eq!(
            ollama_answer(br#"{"message":{"content":"w0 "},"done":true}"#).as_deref(),
            Some("w0 ")
        );
    }
}
