//! What every handler can reach: a small bag of shared handles.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::KeyStore;
use crate::catalog::ModelCatalog;
use crate::config::TierConfig;
use crate::ollama::OllamaClient;
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
    /// For health checks.
    pub ollama: OllamaClient,
    /// Tiers by name.
    pub tiers: Arc<HashMap<String, TierConfig>>,
    /// Interval of SSE keep-alive comments.
    pub keepalive: Duration,
    /// Request statistics for the admin API.
    pub stats: Arc<Stats>,
}
