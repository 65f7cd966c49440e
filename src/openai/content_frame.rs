//! The SSE frame of a plain text token, the one a stream sends for almost every token, written
//! from parts rendered once per answer: only the token's text goes through the JSON string
//! escaper. The general paths serialize the whole chunk, its id, model and other constant
//! strings included, for every token (a profile of `long_answers` put about 8% of `serve`'s
//! CPU in that serializer, and its chunk a small allocation per token).

use bytes::BytesMut;

use super::Delta;
use super::render::ResponseMeta;

/// Stands for the text while the parts are cut out of a reference frame: unlikely in any id
/// or model name, and escaped by JSON, so it cannot be mistaken for the frame's own bytes.
const MARK: &str = "\u{1}seadragon-text\u{1}";

/// The bytes of a frame before and after its text.
type Parts = (Box<[u8]>, Box<[u8]>);

/// The frame of one answer's text tokens.
#[derive(Debug, Clone)]
pub struct TextFrames {
    parts: Option<Parts>,
}

impl TextFrames {
    /// Cuts the parts out of the frame that `render` writes for a text (the general path):
    /// the same bytes by construction, whatever the chunk's fields are. Should the text not
    /// appear exactly once, every token takes the general path.
    pub fn from_reference(render: impl Fn(&str, &mut BytesMut)) -> Self {
        let mut reference = BytesMut::new();
        render(MARK, &mut reference);
        let mark = serde_json::to_vec(MARK).unwrap_or_default();
        let at: Vec<usize> = reference
            .windows(mark.len().max(1))
            .enumerate()
            .filter(|(_, w)| *w == mark.as_slice())
            .map(|(i, _)| i)
            .collect();
        let parts = match at.as_slice() {
            [i] => Some((reference[..*i].into(), reference[*i + mark.len()..].into())),
            _ => None,
        };
        Self { parts }
    }

    /// Appends the frame carrying `text`; false (nothing appended) when the parts could not
    /// be cut and the caller must use the general path.
    pub fn write(&self, text: &str, out: &mut BytesMut) -> bool {
        let Some((before, after)) = &self.parts else {
            return false;
        };
        out.extend_from_slice(before);
        // Escaping a string into memory cannot fail.
        let _ = serde_json::to_writer(bytes::BufMut::writer(&mut *out), text);
        out.extend_from_slice(after);
        true
    }
}

/// Chat completion chunks: a delta that is plain text (no role, reasoning or tool call).
#[derive(Debug, Clone)]
pub struct ContentFrames(TextFrames);

impl ContentFrames {
    /// Renders the part of every chunk of this answer that does not change.
    pub fn new(meta: &ResponseMeta) -> Self {
        Self(TextFrames::from_reference(|text, out| {
            meta.write_delta_frame(&plain(text), out);
        }))
    }

    /// Appends the frame of `delta` if it is plain text and returns true; otherwise appends
    /// nothing and returns false.
    pub fn write(&self, delta: &Delta, out: &mut BytesMut) -> bool {
        let Some(text) = delta.content.as_deref() else {
            return false;
        };
        if delta.first || delta.reasoning.is_some() || !delta.tool_calls.is_empty() {
            return false;
        }
        self.0.write(text, out)
    }
}

fn plain(text: &str) -> Delta {
    Delta {
        content: Some(text.to_owned()),
        ..Delta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: [&str; 6] = [
        "",
        "The",
        " \"quoted\" \\ back",
        "line\nbreak\ttab\u{1}",
        "héllo 🦀",
        "</script>",
    ];

    fn meta() -> ResponseMeta {
        ResponseMeta {
            id: "chatcmpl-\"1\"".into(),
            created: 1_761_498_924,
            model: "llama3.2:70b".into(),
            service_tier: "flex",
        }
    }

    #[test]
    fn a_text_frame_is_byte_for_byte_the_general_one() {
        let frames = ContentFrames::new(&meta());
        for text in TEXTS {
            let (mut fast, mut general) = (BytesMut::new(), BytesMut::new());
            assert!(frames.write(&plain(text), &mut fast));
            meta().write_delta_frame(&plain(text), &mut general);
            assert_eq!(fast, general, "{text:?}");
        }
    }

    #[test]
    fn a_text_completion_frame_is_byte_for_byte_the_general_one() {
        let meta = crate::openai::completions::CompletionMeta {
            id: "cmpl-1".into(),
            created: 1_761_498_924,
            model: "qwen2.5-coder:32b".into(),
        };
        let general = |text: &str, out: &mut BytesMut| {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(meta.text_chunk(text).as_bytes());
            out.extend_from_slice(b"\n\n");
        };
        let frames = TextFrames::from_reference(general);
        for text in TEXTS {
            let (mut fast, mut expected) = (BytesMut::new(), BytesMut::new());
            assert!(frames.write(text, &mut fast));
            general(text, &mut expected);
            assert_eq!(fast, expected, "{text:?}");
        }
    }

    #[test]
    fn other_deltas_are_left_to_the_general_path() {
        let frames = ContentFrames::new(&meta());
        let mut out = BytesMut::new();
        let first = Delta {
            first: true,
            ..plain("The")
        };
        let reasoning = Delta {
            reasoning: Some("hmm".to_owned()),
            ..plain("")
        };
        for delta in [first, reasoning, Delta::default()] {
            assert!(!frames.write(&delta, &mut out));
        }
        assert!(out.is_empty());
    }

    #[test]
    fn a_frame_without_the_text_or_with_it_twice_is_never_cut() {
        let mut out = BytesMut::new();
        let without = TextFrames::from_reference(|_, out| out.extend_from_slice(b"{}"));
        let twice = TextFrames::from_reference(|text, out| {
            let _ = serde_json::to_writer(bytes::BufMut::writer(&mut *out), &[text, text]);
        });
        assert!(!without.write("x", &mut out) && !twice.write("x", &mut out));
        assert!(out.is_empty());
    }
}
