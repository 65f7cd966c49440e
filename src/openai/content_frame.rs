//! The SSE frame of a plain text delta, the one a stream sends for almost every token,
//! written from a prefix rendered once per answer: only the token's text goes through the
//! JSON string escaper. The general path ([`ResponseMeta::write_delta_frame`]) serializes
//! the whole chunk, its id, model and other constant strings included, for every token (a
//! profile of `long_answers` put about 8% of `serve`'s CPU in that serializer).

use bytes::BytesMut;

use super::Delta;
use super::render::ResponseMeta;

/// Writes the frames of plain text deltas of one answer.
#[derive(Debug, Clone)]
pub struct ContentFrames {
    /// `data: {"id":…,"choices":[{"index":0,"delta":{"content":`
    prefix: Option<Box<[u8]>>,
}

/// What follows the escaped text, up to the frame's blank line.
const SUFFIX: &[u8] = b"},\"finish_reason\":null}]}\n\n";

impl ContentFrames {
    /// Renders the part of every chunk of this answer that does not change.
    pub fn new(meta: &ResponseMeta) -> Self {
        // The general path's frame for an empty text, cut where the text begins: the same
        // bytes by construction, whatever the chunk's fields become.
        let mut reference = BytesMut::new();
        meta.write_delta_frame(&plain(String::new()), &mut reference);
        let tail = [b"\"\"".as_slice(), SUFFIX].concat();
        // Should the chunk ever end otherwise, every delta takes the general path.
        let prefix = reference
            .strip_suffix(tail.as_slice())
            .map(Box::<[u8]>::from);
        Self { prefix }
    }

    /// Appends the frame of `delta` if it is plain text (no role, reasoning or tool call) and
    /// returns true; otherwise appends nothing and returns false.
    pub fn write(&self, delta: &Delta, out: &mut BytesMut) -> bool {
        let (Some(prefix), Some(text)) = (&self.prefix, delta.content.as_deref()) else {
            return false;
        };
        if delta.first || delta.reasoning.is_some() || !delta.tool_calls.is_empty() {
            return false;
        }
        out.extend_from_slice(prefix);
        // Escaping a string into memory cannot fail.
        let _ = serde_json::to_writer(bytes::BufMut::writer(&mut *out), text);
        out.extend_from_slice(SUFFIX);
        true
    }
}

fn plain(text: String) -> Delta {
    Delta {
        content: Some(text),
        ..Delta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for text in [
            "",
            "The",
            " \"quoted\" \\ back",
            "line\nbreak\ttab\u{1}",
            "héllo 🦀",
            "</script>",
        ] {
            let (mut fast, mut general) = (BytesMut::new(), BytesMut::new());
            assert!(frames.write(&plain(text.to_owned()), &mut fast));
            meta().write_delta_frame(&plain(text.to_owned()), &mut general);
            assert_eq!(fast, general, "{text:?}");
        }
    }

    #[test]
    fn other_deltas_are_left_to_the_general_path() {
        let frames = ContentFrames::new(&meta());
        let mut out = BytesMut::new();
        let first = Delta {
            first: true,
            ..plain("The".to_owned())
        };
        let reasoning = Delta {
            reasoning: Some("hmm".to_owned()),
            ..plain(String::new())
        };
        let empty = Delta::default();
        for delta in [first, reasoning, empty] {
            assert!(!frames.write(&delta, &mut out));
        }
        assert!(out.is_empty());
    }
}
