//! Random identifiers: completion ids, tool-call ids, job ids and key secrets.

use rand::RngExt;

/// `n` random characters from `[A-Za-z0-9]`, from the thread-local CSPRNG.
pub fn random_alphanumeric(n: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// `chatcmpl-` and 29 random characters, unique per answer (Ollama's own ids collide).
pub fn completion_id() -> String {
    format!("chatcmpl-{}", random_alphanumeric(29))
}

/// `cmpl-` and 29 random characters: a text completion id.
pub fn text_completion_id() -> String {
    format!("cmpl-{}", random_alphanumeric(29))
}

/// `call_` and 24 random characters, for tool calls that arrive without an id.
pub fn tool_call_id() -> String {
    format!("call_{}", random_alphanumeric(24))
}

/// A job id: short enough for logs, random enough to never collide across gateways.
pub fn job_id() -> String {
    format!("job_{}", random_alphanumeric(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_length_and_alphabet() {
        let id = completion_id();
        assert!(id.starts_with("chatcmpl-") && id.len() == 38);
        assert!(id[9..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(completion_id(), completion_id());
        assert_eq!(tool_call_id().len(), 29);
    }
}
