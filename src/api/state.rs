//! What every handler can reach: a small bag of shared handles.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::KeyStore;
use crate::catalog::ModelCatalog;
use crate::config::TierConfig;
use crate::limits::Limits;
use crate::queue::JobQueue;
use crate::stats::Stats;

/// Shared handles, cloned into each request.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Where jobs go.
    pub queue: Arc<dyn JobQueue>,
    /// API keys.
    pub keys: KeyStore,
    /// Installed models and aliases.
    pub catalog: Arc<ModelCatalog>,
    /// Tiers by name.
    pub tiers: Arc<HashMap<String, TierConfig>>,
    /// Per-key rate and concurrency limits.
    pub limits: Arc<Limits>,
    /// Cancelled when shutdown stops waiting for running work: open answers end with an error.
    pub hard_stop: CancellationToken,
    /// Interval of SSE keep-alive comments.
    pub keepalive: Duration,
    /// Request statistics for the admin API.
    pub stats: Arc<Stats>,
}
