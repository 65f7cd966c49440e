//! The APIs a phase drives: OpenAI chat (most phases), text completions, the Responses API,
//! Ollama's native `/api/generate` and embeddings. Each has its request through Seadragon and
//! its baseline, the same work asked of the fake Ollama directly.

use serde::Serialize;

use crate::parse::Framing;

/// The model with the embedding capability, for `/v1/embeddings` and `/api/embed`.
pub const EMBED_MODEL: &str = "bench-embed:latest";

/// Which API a phase calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `/v1/chat/completions`; baseline `/api/chat`.
    Chat,
    /// `/v1/completions` (IDE autocompletion); baseline `/api/generate`.
    Completions,
    /// `/v1/responses`; baseline `/api/chat`.
    Responses,
    /// Seadragon's native `/api/generate`; baseline the fake's.
    Generate,
    /// `/v1/embeddings`; baseline `/api/embed`.
    Embeddings,
}

impl Endpoint {
    /// Path and JSON body of one request, through Seadragon (`seadragon`) or to the fake.
    pub fn request(self, seadragon: bool, stream: bool, prompt: &str) -> (&'static str, String) {
        let chat_model = if seadragon {
            "bench"
        } else {
            crate::backend::MODEL
        };
        let messages = format!(r#"[{{"role":"user","content":"{prompt}"}}]"#);
        match (self, seadragon) {
            (Self::Chat, true) => (
                "/v1/chat/completions",
                format!(r#"{{"model":"{chat_model}","messages":{messages},"stream":{stream}}}"#),
            ),
            (Self::Chat | Self::Responses, false) => (
                "/api/chat",
                format!(r#"{{"model":"{chat_model}","messages":{messages},"stream":{stream}}}"#),
            ),
            (Self::Completions, true) => (
                "/v1/completions",
                format!(r#"{{"model":"{chat_model}","prompt":"{prompt}","stream":{stream}}}"#),
            ),
            (Self::Completions | Self::Generate, _) => (
                "/api/generate",
                format!(r#"{{"model":"{chat_model}","prompt":"{prompt}","stream":{stream}}}"#),
            ),
            (Self::Responses, true) => (
                "/v1/responses",
                format!(r#"{{"model":"{chat_model}","input":"{prompt}","stream":{stream}}}"#),
            ),
            (Self::Embeddings, true) => (
                "/v1/embeddings",
                format!(r#"{{"model":"{EMBED_MODEL}","input":"{prompt}"}}"#),
            ),
            (Self::Embeddings, false) => (
                "/api/embed",
                format!(r#"{{"model":"{EMBED_MODEL}","input":"{prompt}"}}"#),
            ),
        }
    }

    /// How a streamed answer is framed.
    pub fn framing(self, seadragon: bool) -> Framing {
        match (self, seadragon) {
            (Self::Chat | Self::Completions | Self::Responses, true) => Framing::Sse,
            _ => Framing::Ndjson,
        }
    }

    /// Whether the answer is a vector rather than text.
    pub fn embeds(self) -> bool {
        self == Self::Embeddings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_has_its_own_path_and_a_baseline_on_the_fake() {
        assert_eq!(
            Endpoint::Completions.request(true, true, "x").0,
            "/v1/completions"
        );
        assert_eq!(
            Endpoint::Completions.request(false, true, "x").0,
            "/api/generate"
        );
        assert_eq!(Endpoint::Responses.request(false, true, "x").0, "/api/chat");
        assert!(
            Endpoint::Embeddings
                .request(true, false, "x")
                .1
                .contains(EMBED_MODEL)
        );
        assert!(matches!(Endpoint::Generate.framing(true), Framing::Ndjson));
    }
}
