//! The tier table of the TOML file: each tier's priority, limits and starvation time, and the
//! `[scheduling]` section, with their defaults and validation.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// One API-key tier: its base priority and its limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Name used by keys (`free`, `pro`, ...).
    pub name: String,
    /// Base priority, 1..=3; the rescue level 4 is reached only by a starving job's rescue.
    pub priority: u8,
    /// Requests per minute per key.
    #[serde(default = "default_rpm")]
    pub requests_per_minute: u32,
    /// Running plus queued requests per key.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// Queued jobs of this tier across the system.
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
    /// Seconds a job may stay queued before it fails without running.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
    /// Seconds after which a queued job is starving and may be rescued; unset means
    /// `SEADRAGON_AGING_SECS`.
    #[serde(default)]
    pub starvation_secs: Option<f64>,
    /// Ollama `options` the tier's keys may set; unset means the safe default list.
    #[serde(default)]
    pub allowed_options: Option<Vec<String>>,
    /// Largest `options.num_ctx` (the model's context length bounds it too).
    #[serde(default)]
    pub max_num_ctx: Option<u64>,
    /// Whether callers' `keep_alive` reaches Ollama (otherwise it is removed).
    #[serde(default)]
    pub allow_keep_alive: bool,
    /// Bytes one key's running and queued request bodies may hold (default 64 MiB).
    #[serde(default)]
    pub max_key_bytes: Option<u64>,
    /// Bytes all the tier's running and queued request bodies may hold (default 1 GiB).
    #[serde(default)]
    pub max_queued_bytes: Option<u64>,
}

fn default_rpm() -> u32 {
    60
}
fn default_max_concurrent() -> u32 {
    4
}
fn default_max_queued() -> usize {
    1000
}
fn default_max_wait_secs() -> u64 {
    600
}

/// Longest `max_wait_secs` a tier may set: a day.
const MAX_WAIT_LIMIT_SECS: u64 = 86_400;

impl TierConfig {
    fn new(name: &str, priority: u8, requests_per_minute: u32, max_concurrent: u32) -> Self {
        Self {
            name: name.to_owned(),
            priority,
            requests_per_minute,
            max_concurrent,
            max_queued: default_max_queued(),
            max_wait_secs: default_max_wait_secs(),
            starvation_secs: None,
            allowed_options: None,
            max_num_ctx: None,
            allow_keep_alive: false,
            max_key_bytes: None,
            max_queued_bytes: None,
        }
    }

    /// What the tier's keys may ask of Ollama itself.
    pub fn native_policy(&self) -> crate::native_policy::NativePolicy {
        let default = crate::native_policy::NativePolicy::default();
        crate::native_policy::NativePolicy {
            allowed: self.allowed_options.clone().unwrap_or(default.allowed),
            max_num_ctx: self.max_num_ctx.unwrap_or(default.max_num_ctx),
            keep_alive: self.allow_keep_alive,
        }
    }

    /// How long a job of this tier may wait in the queue.
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs)
    }

    /// How long a job of this tier waits before it is starving, `default` unless set.
    pub fn starvation(&self, default: Duration) -> Duration {
        self.starvation_secs
            .map_or(default, Duration::from_secs_f64)
    }
}

/// The default tier table: `free` = 1, `pro` = 2, `enterprise` = 3.
pub fn default_tiers() -> Vec<TierConfig> {
    vec![
        TierConfig::new("free", 1, 60, 4),
        TierConfig::new("pro", 2, 600, 16),
        TierConfig::new("enterprise", 3, 6000, 64),
    ]
}

/// The `[scheduling]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulingConfig {
    /// Most of the recent dispatches that may go to rescued jobs, in (0, 0.5].
    #[serde(default = "default_rescue_share")]
    pub rescue_share: f64,
}

fn default_rescue_share() -> f64 {
    0.1
}

impl Default for SchedulingConfig {
    fn default() -> Self {
        Self {
            rescue_share: default_rescue_share(),
        }
    }
}

/// Checks names, priorities and every limit of the tier table.
pub(super) fn validate(tiers: &[TierConfig]) -> Result<(), ConfigError> {
    if tiers.is_empty() {
        return Err(invalid("tiers", "at least one tier is needed"));
    }
    for (i, tier) in tiers.iter().enumerate() {
        let bad = |reason: String| Err(invalid("tiers", format!("tier {:?}: {reason}", tier.name)));
        if tier.name.trim().is_empty() {
            return Err(invalid("tiers", "a tier has an empty name"));
        }
        if !(1..=3).contains(&tier.priority) {
            return bad("priority must be 1, 2 or 3".to_owned());
        }
        if tier.max_queued == 0 || tier.max_concurrent == 0 || tier.requests_per_minute == 0 {
            return bad("limits must be positive".to_owned());
        }
        // Upper bounds only catch typos: far above any real deployment, below any overflow.
        for (name, value, limit) in [
            (
                "requests_per_minute",
                u64::from(tier.requests_per_minute),
                1_000_000_000,
            ),
            ("max_concurrent", u64::from(tier.max_concurrent), 1_000_000),
            ("max_queued", tier.max_queued as u64, 10_000_000),
        ] {
            if value > limit {
                return bad(format!("{name} must be at most {limit}"));
            }
        }
        if !(1..=MAX_WAIT_LIMIT_SECS).contains(&tier.max_wait_secs) {
            return bad(format!(
                "max_wait_secs must be between 1 and {MAX_WAIT_LIMIT_SECS}"
            ));
        }
        if tier.max_num_ctx == Some(0) {
            return bad("max_num_ctx must be at least 1".to_owned());
        }
        if let Some(secs) = tier.starvation_secs
            && !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0)
        {
            return bad("starvation_secs must be above 0 and at most 86400".to_owned());
        }
        if tiers[..i].iter().any(|t| t.name == tier.name) {
            return Err(invalid(
                "tiers",
                format!("tier {:?} is defined twice", tier.name),
            ));
        }
    }
    Ok(())
}
