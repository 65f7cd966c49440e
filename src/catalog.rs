//! The model catalog: which models are installed, and what a requested name resolves to.
//!
//! Resolution follows Ollama (a name without a tag means `:latest`) plus two gateway rules:
//! configured aliases (`gpt-4o` → `llama3.3:70b` or `"default"`), and `"default"` → the
//! admin-selected default model, or the newest installed model while none is selected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::{KeyStore, StoreError};
use crate::ollama::wire::{ModelEntry, ShowResponse};
use crate::ollama::{OllamaClient, OllamaError};

/// How long a model list is trusted before Ollama is asked again.
const FRESH_FOR: Duration = Duration::from_secs(2);

/// How long a list past its freshness is still served while a fresh one is fetched behind it,
/// and how long after its last use the list is still kept fresh.
const SERVE_STALE_FOR: Duration = Duration::from_secs(60);

/// How old a list in use may grow before it is read again behind the requests: well inside
/// [`FRESH_FOR`], so a request never finds it stale.
const REFRESH_AT: Duration = Duration::from_secs(1);

/// The settings key of the admin-selected default model.
pub const DEFAULT_MODEL_SETTING: &str = "default_model";

/// Where the model list comes from: Ollama itself (serve, worker), or the announcements of
/// the workers behind the broker (a gateway without an Ollama of its own).
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// Ask this Ollama.
    Ollama(OllamaClient),
    /// Ask the workers' announcements.
    Workers(Arc<dyn ModelDirectory>),
}

/// Models and Ollama health as announced by live workers.
pub trait ModelDirectory: Send + Sync + std::fmt::Debug {
    /// The union of the models of workers heard from recently (newest first, no duplicates).
    fn models(&self) -> Vec<ModelEntry>;
    /// How many workers were heard from recently, and how many of them reach their Ollama.
    fn workers(&self) -> (usize, usize);
    /// The Ollama version of every worker heard from recently, one per worker that reported
    /// one (the model list above keeps one entry per model, so it can hide a worker).
    fn ollama_versions(&self) -> Vec<String> {
        self.models()
            .into_iter()
            .filter_map(|m| m.ollama_version)
            .collect()
    }
    /// What the workers' Ollamas have loaded (`/api/ps` entries).
    fn loaded(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

/// Why a model name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Ollama could not be asked.
    #[error(transparent)]
    Ollama(#[from] OllamaError),
    /// No installed model has this name.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    NotFound(String),
    /// The settings could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No worker has announced itself recently, so no model can run.
    #[error("no worker is connected to the queue")]
    NoWorkers,
}

/// Cached view of Ollama's installed models.
#[derive(Debug)]
pub struct ModelCatalog {
    source: ModelSource,
    store: KeyStore,
    aliases: BTreeMap<String, String>,
    lists: Arc<Lists>,
}

type TagsOutcome = Result<Arc<Vec<ModelEntry>>, OllamaError>;

/// The model lists read, shared with the refresh that runs behind requests.
#[derive(Debug, Default)]
struct Lists {
    /// The latest list and when it was read.
    cache: Mutex<Option<(Instant, Arc<Vec<ModelEntry>>)>>,
    /// The last `/api/tags` call: when it started and what it answered (see [`Lists::tags`]).
    last_tags: tokio::sync::Mutex<Option<(Instant, TagsOutcome)>>,
    /// When a request last asked for the list.
    last_used: Mutex<Option<Instant>>,
    /// Whether the task keeping the list fresh is running.
    refreshing: AtomicBool,
}

impl Lists {
    fn cached(&self) -> Option<(Instant, Arc<Vec<ModelEntry>>)> {
        lock(&self.cache).clone()
    }

    fn store(&self, models: Arc<Vec<ModelEntry>>) {
        *lock(&self.cache) = Some((Instant::now(), models));
    }

    /// Ollama's `/api/tags`, one call at a time: a caller that waited for a call started after
    /// it asked takes that call's answer. Without this, a burst of requests finding the cache
    /// stale each asked Ollama (1,000 streams opened at once made about 180 calls).
    async fn tags(&self, ollama: &OllamaClient) -> TagsOutcome {
        let asked = Instant::now();
        let mut last = self.last_tags.lock().await;
        if let Some((started, outcome)) = last.as_ref()
            && *started >= asked
        {
            return outcome.clone();
        }
        let started = Instant::now();
        let outcome = ollama.tags().await.map(|tags| Arc::new(tags.models));
        *last = Some((started, outcome.clone()));
        outcome
    }

    /// Notes a use of the list, and starts the task that reads it again whenever it is
    /// [`REFRESH_AT`] old, for as long as it is used. Requests then find it fresh without ever
    /// waiting for Ollama, and the reads happen on their own schedule rather than inside a
    /// request. A failed read leaves the old list in place, served until it is too old.
    fn keep_fresh(self: &Arc<Self>, ollama: &OllamaClient) {
        *lock(&self.last_used) = Some(Instant::now());
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (lists, ollama) = (Arc::clone(self), ollama.clone());
        tokio::spawn(async move {
            loop {
                if let Some((at, _)) = lists.cached() {
                    tokio::time::sleep_until((at + REFRESH_AT).into()).await;
                }
                let in_use = lock(&lists.last_used).is_some_and(|t| t.elapsed() < SERVE_STALE_FOR);
                if !in_use {
                    break;
                }
                match lists.tags(&ollama).await {
                    Ok(models) => lists.store(models),
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot refresh the model list");
                        tokio::time::sleep(REFRESH_AT).await;
                    }
                }
            }
            lists.refreshing.store(false, Ordering::Release);
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ModelCatalog {
    /// A catalog asking `source`, with the configured aliases.
    pub fn new(source: ModelSource, store: KeyStore, aliases: BTreeMap<String, String>) -> Self {
        Self {
            source,
            store,
            aliases,
            lists: Arc::default(),
        }
    }

    /// Configured aliases.
    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    /// The installed models, at most a few seconds old.
    pub async fn models(&self) -> Result<Arc<Vec<ModelEntry>>, CatalogError> {
        if let Some((at, models)) = self.lists.cached() {
            // Ollama's list is kept fresh behind the requests while they use it, and one a
            // little past its freshness still names the models a request wants: no request
            // waits for `/api/tags` (a client calling every second or two did, on every other
            // request). A model removed meanwhile gets Ollama's own 404; one pulled meanwhile
            // is looked for again by `installed`.
            if let ModelSource::Ollama(ollama) = &self.source
                && at.elapsed() < SERVE_STALE_FOR
            {
                self.lists.keep_fresh(ollama);
                return Ok(models);
            }
            if at.elapsed() < FRESH_FOR {
                return Ok(models);
            }
        }
        self.refresh().await
    }

    async fn refresh(&self) -> Result<Arc<Vec<ModelEntry>>, CatalogError> {
        let models = match &self.source {
            ModelSource::Ollama(ollama) => self.lists.tags(ollama).await?,
            ModelSource::Workers(directory) => {
                if directory.workers().0 == 0 {
                    return Err(CatalogError::NoWorkers);
                }
                Arc::new(directory.models())
            }
        };
        self.lists.store(Arc::clone(&models));
        Ok(models)
    }

    /// The installed model a client's `model` means.
    pub async fn resolve(&self, requested: &str) -> Result<String, CatalogError> {
        let target = self
            .aliases
            .get(requested)
            .map_or(requested, String::as_str);
        if target == "default" {
            return self.default_model().await;
        }
        self.installed(target)
            .await?
            .ok_or_else(|| CatalogError::NotFound(requested.to_owned()))
    }

    /// The installed name of `name` (aliases are not followed); `None` when not installed.
    pub async fn installed(&self, name: &str) -> Result<Option<String>, CatalogError> {
        let models = self.models().await?;
        if let Some(found) = find(&models, name) {
            return Ok(Some(found));
        }
        // The model may have been pulled a moment ago: look again once before refusing.
        let stale = self
            .lists
            .cached()
            .is_none_or(|(at, _)| at.elapsed() > Duration::from_millis(500));
        if stale {
            return Ok(find(&self.refresh().await?, name));
        }
        Ok(None)
    }

    /// Ollama's `/api/show` details of an installed model; `None` where the gateway has no
    /// Ollama of its own (the workers announce only what `/api/tags` says).
    pub async fn show(&self, model: &str) -> Option<ShowResponse> {
        match &self.source {
            ModelSource::Ollama(ollama) => ollama.show(model).await.ok(),
            ModelSource::Workers(_) => None,
        }
    }

    /// `/api/show` as the Ollama of this gateway answers `body`, or behind a broker as a
    /// worker's Ollama answered for the installed model `model` (the worker announces it);
    /// `None` when no worker announced that answer.
    pub async fn show_raw(
        &self,
        model: &str,
        body: &serde_json::Value,
    ) -> Option<Result<serde_json::Value, OllamaError>> {
        match &self.source {
            ModelSource::Ollama(ollama) => Some(ollama.show_raw(body).await),
            ModelSource::Workers(directory) => directory
                .models()
                .into_iter()
                .find(|m| m.name == model)
                .and_then(|m| m.show)
                .map(Ok),
        }
    }

    /// `/api/ps`: this gateway's Ollama's, or behind a broker every worker's loaded models.
    pub async fn loaded(&self) -> Result<serde_json::Value, CatalogError> {
        match &self.source {
            ModelSource::Ollama(ollama) => Ok(ollama.ps().await?),
            ModelSource::Workers(directory) => {
                Ok(serde_json::json!({ "models": directory.loaded() }))
            }
        }
    }

    /// The lowest Ollama version behind this gateway: its own Ollama's, or the lowest the
    /// workers announced with their models (`0.0.0`, which clients take for a development
    /// build, when none did).
    pub async fn ollama_version(&self) -> Result<String, CatalogError> {
        match &self.source {
            ModelSource::Ollama(ollama) => Ok(ollama.version().await?),
            ModelSource::Workers(directory) => {
                if directory.workers().0 == 0 {
                    return Err(CatalogError::NoWorkers);
                }
                let versions = directory.ollama_versions();
                let lowest = versions.iter().min_by_key(|v| version_key(v));
                Ok(lowest.map_or("0.0.0", String::as_str).to_owned())
            }
        }
    }

    /// Whatever runs the models: `Ok(detail)` when it answers.
    pub async fn health(&self) -> Result<String, String> {
        match &self.source {
            ModelSource::Ollama(ollama) => ollama
                .version()
                .await
                .map(|v| format!("Ollama {v}"))
                .map_err(|e| e.to_string()),
            ModelSource::Workers(directory) => match directory.workers() {
                (0, _) => Err("no worker is connected to the queue".to_owned()),
                (n, 0) => Err(format!("{n} workers connected, none reaches its Ollama")),
                (n, ok) => Ok(format!("{ok} of {n} workers reach their Ollama")),
            },
        }
    }

    /// The model `"default"` resolves to.
    pub async fn default_model(&self) -> Result<String, CatalogError> {
        let models = self.models().await?;
        if let Some(chosen) = self.selected_default().await?
            && let Some(found) = find(&models, &chosen)
        {
            return Ok(found);
        }
        // Ollama lists the newest model first.
        models
            .first()
            .map(|m| m.name.clone())
            .ok_or_else(|| CatalogError::NotFound("default".to_owned()))
    }

    /// The default model an admin selected, installed or not; `None` when none was.
    pub async fn selected_default(&self) -> Result<Option<String>, StoreError> {
        self.store.setting(DEFAULT_MODEL_SETTING).await
    }

    /// Makes the installed model `name` the default, stored so it survives restarts; returns
    /// its installed name (`llama3.2` is stored as `llama3.2:latest`).
    pub async fn select_default(&self, name: &str) -> Result<String, CatalogError> {
        let installed = self
            .installed(name)
            .await?
            .ok_or_else(|| CatalogError::NotFound(name.to_owned()))?;
        self.store
            .set_setting(DEFAULT_MODEL_SETTING, &installed)
            .await?;
        Ok(installed)
    }
}

/// `0.12.3-rc1` → `[0, 12, 3]`, for ordering versions.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

/// The installed name matching `name`, adding `:latest` to an untagged name as Ollama does.
fn find(models: &[ModelEntry], name: &str) -> Option<String> {
    let tagged = if name.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    };
    models
        .iter()
        .find(|m| m.name == name || m.name == tagged || m.model == name || m.model == tagged)
        .map(|m| m.name.clone())
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
