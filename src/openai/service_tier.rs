//! `service_tier` and vLLM's `priority` as callers send them: every API reads them the same way.

use super::request::RequestError;

/// What the caller asked for in `service_tier` / `priority`: nothing raises a job above its
/// key's tier, flex lowers it one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceTier {
    /// Run at the key's tier.
    #[default]
    Standard,
    /// The caller volunteers to wait: one level lower.
    Flex,
}

impl ServiceTier {
    /// The name echoed in responses, as OpenAI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "default",
            Self::Flex => "flex",
        }
    }
}

pub(in crate::openai) fn service_tier(
    name: Option<&str>,
    priority: Option<i64>,
) -> Result<ServiceTier, RequestError> {
    let by_name = match name {
        None | Some("auto" | "default" | "priority" | "scale") => ServiceTier::Standard,
        Some("flex") => ServiceTier::Flex,
        Some(other) => {
            return Err(RequestError::new(
                "service_tier",
                format!("Invalid service_tier '{other}': expected auto, default, flex or priority"),
            ));
        }
    };
    // vLLM's convention: a positive priority means "less urgent".
    Ok(if priority.is_some_and(|p| p > 0) {
        ServiceTier::Flex
    } else {
        by_name
    })
}
