//! The backend every scenario measures against: the workspace's fake Ollama (`fake-ollama`)
//! with one model, no limit on parallel generations, nothing recorded, and a generation
//! profile set between phases.
//!
//! The answer's length travels in the prompt (`#long N`, which the fake answers with the
//! numbered tokens `tok0 tok1 ...`), so a client can tell a missing or reordered token from
//! the text alone; the timing is the fake's, changed with [`Profile::apply`].

use std::net::SocketAddr;
use std::time::Duration;

use fake_ollama::{FakeConfig, FakeModel, FakeOllama};

/// The one model the fake has installed.
pub const MODEL: &str = "bench:latest";

/// Generations the fake runs at once: more than any phase opens, so nothing waits in the
/// fake's own queue and every wait measured is Seadragon's.
const PARALLEL: usize = 100_000;

/// How the fake generates during a phase.
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
        fake_ollama::numbered_text(self.tokens as usize)
    }

    /// The prompt that asks the fake for this answer.
    pub fn prompt(&self) -> String {
        format!("#long {}", self.tokens)
    }

    /// How long one answer takes to generate.
    pub fn duration(&self) -> Duration {
        self.first_token + self.gap * self.tokens.saturating_sub(1)
    }

    /// Makes the fake generate with this timing from its next request on.
    pub fn apply(&self, fake: &FakeOllama) {
        fake.set_timing(self.first_token, self.gap);
    }
}

/// Starts the fake on a random loopback port.
pub async fn start() -> std::io::Result<FakeOllama> {
    let config = FakeConfig {
        models: vec![FakeModel::new(MODEL, &["completion"])],
        parallel: PARALLEL,
        first_token_delay: Duration::ZERO,
        token_delay: Duration::ZERO,
        record: false,
        ..FakeConfig::default()
    };
    FakeOllama::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_text_has_one_word_per_token() {
        let p = Profile {
            first_token: Duration::ZERO,
            tokens: 3,
            gap: Duration::ZERO,
        };
        assert_eq!(p.expected_text(), "tok0 tok1 tok2");
        assert_eq!(p.prompt(), "#long 3");
    }
}
