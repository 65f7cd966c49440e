//! Admission shared by every generating route (OpenAI and Ollama facade alike): the key's
//! tier, its concurrency, the model name resolved through aliases and `"default"`, then the
//! queue. A route only says which native body the job carries and how its answer is written.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::params::invalid;
use super::state::AppState;
use crate::auth::ApiKey;
use crate::config::TierConfig;
use crate::limits::InFlight;
use crate::limits::budget::OverBudget;
use crate::openai::ServiceTier;
use crate::queue::schedule::base_level;
use crate::queue::{Job, JobKind, JobTicket, QueueError};

/// A queued job and what its answer holds on to.
#[derive(Debug)]
pub struct Admitted {
    /// Follows the job; dropping it cancels the job.
    pub ticket: JobTicket,
    /// The key's place among its concurrent requests, held until the answer is complete.
    pub in_flight: InFlight,
    /// The tier the job runs in.
    pub tier: String,
}

/// Admits and queues one job for `key`. `body` builds the native body for the installed model
/// that `requested` resolves to.
pub async fn submit(
    state: &AppState,
    key: &ApiKey,
    requested: &str,
    (kind, service_tier): (JobKind, ServiceTier),
    body: impl FnOnce(&str) -> Result<Box<RawValue>, serde_json::Error>,
) -> Result<Admitted, ApiError> {
    let tier = state
        .tiers
        .get(&key.tier)
        .ok_or_else(|| ApiError::UnknownTier(key.tier.clone()))?;
    let mut in_flight = state.limits.acquire(&tier.name, &key.id).map_err(|_| {
        state.stats.metrics().refused(&tier.name, "concurrency");
        ApiError::TooManyConcurrent(tier.max_concurrent)
    })?;
    let model = state.catalog.resolve(requested).await?;
    let body = body(&model).map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = native_policy(state, tier, &model, body).await?;
    let bytes = u64::try_from(body.get().len()).unwrap_or(u64::MAX);
    state
        .limits
        .hold_body(&mut in_flight, &tier.name, bytes)
        .map_err(|over| {
            state.stats.metrics().refused(&tier.name, "memory");
            let (whose, limit) = match over {
                OverBudget::Key(limit) => ("this key's", limit),
                OverBudget::Tier(limit) => (tier.name.as_str(), limit),
            };
            ApiError::QueueFull {
                message: format!(
                    "the queued requests of {whose} tier hold their budget of {} MiB of \
                     request bodies; retry once some have finished",
                    limit / (1024 * 1024)
                ),
                retry_after: std::time::Duration::from_secs(5),
            }
        })?;
    let job = Job {
        id: crate::ids::job_id(),
        tier: tier.name.clone(),
        base_level: base_level(tier.priority, service_tier),
        key_id: key.id.clone(),
        kind,
        body: body.into(),
        model,
        max_wait: tier.max_wait(),
        enqueued_at_ms: unix_ms(),
    };
    super::access_log::note_job(&job.id, &job.model);
    let model_name = job.model.clone();
    let submitted = state.queue.submit(job).await;
    let ticket = match state.stats.track(&tier.name, &model_name, submitted) {
        Ok(ticket) => ticket,
        Err(QueueError::TierFull { tier, max_queued }) => {
            return Err(queue_full(state, &tier, max_queued));
        }
        Err(e @ QueueError::WouldWait { .. }) => {
            state.stats.metrics().shed(&tier.name);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Admitted {
        ticket,
        in_flight,
        tier: tier.name.clone(),
    })
}

/// Applies the tier's policy on Ollama's own settings to the native body of any API: a
/// refused option is a 400 naming it, a caller's `keep_alive` is removed unless allowed.
async fn native_policy(
    state: &AppState,
    tier: &TierConfig,
    model: &str,
    body: Box<RawValue>,
) -> Result<Box<RawValue>, ApiError> {
    // Most bodies set neither: they pass without being parsed again (images can be large).
    let text = body.get();
    if !text.contains("\"options\"") && !text.contains("\"keep_alive\"") {
        return Ok(body);
    }
    let mut native: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| ApiError::Internal(e.to_string()))?;
    let wants_context = native
        .get("options")
        .and_then(|o| o.get("num_ctx"))
        .is_some();
    let context_length = if wants_context {
        state
            .catalog
            .show(model)
            .await
            .and_then(|show| show.context_length())
    } else {
        None
    };
    tier.native_policy()
        .apply(&mut native, context_length)
        .map_err(|refused| invalid(Some(&refused.param), refused.message))?;
    serde_json::value::to_raw_value(&native).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A full tier: the client should come back once the queue ahead of it has drained, which
/// recent throughput estimates.
fn queue_full(state: &AppState, tier: &str, max_queued: usize) -> ApiError {
    state.stats.metrics().refused(tier, "queue_full");
    let rate = state.queue.board().finished_per_sec().unwrap_or(0.0);
    let ahead = state.queue.snapshot().queued().max(max_queued) as f64;
    let wait = if rate > 0.0 { ahead / rate } else { 30.0 };
    ApiError::QueueFull {
        message: format!("the {tier} tier already has {max_queued} queued requests; retry later"),
        retry_after: std::time::Duration::from_secs_f64(wait.clamp(1.0, 600.0)),
    }
}
