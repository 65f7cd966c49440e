//! The models, workers and Ollama versions a gateway knows from the workers' announcements.

use super::RabbitGateway;
use crate::catalog::ModelDirectory;
use crate::ollama::wire::ModelEntry;

impl ModelDirectory for RabbitGateway {
    fn models(&self) -> Vec<ModelEntry> {
        let mut models: Vec<ModelEntry> = Vec::new();
        for (worker, _) in self.inner.live_workers() {
            for value in worker.models {
                if let Ok(entry) = serde_json::from_value::<ModelEntry>(value)
                    && !models.iter().any(|m| m.name == entry.name)
                {
                    models.push(entry);
                }
            }
        }
        models
    }

    fn loaded(&self) -> Vec<serde_json::Value> {
        self.inner
            .live_workers()
            .into_iter()
            .flat_map(|(worker, _)| worker.loaded)
            .collect()
    }

    fn workers(&self) -> (usize, usize) {
        let live = self.inner.live_workers();
        (live.len(), live.iter().filter(|(w, _)| w.ollama_ok).count())
    }

    fn ollama_versions(&self) -> Vec<String> {
        // Every worker's own entries: two workers sharing a model may run different Ollamas.
        self.inner
            .live_workers()
            .into_iter()
            .filter_map(|(worker, _)| {
                worker.models.iter().find_map(|m| {
                    serde_json::from_value::<ModelEntry>(m.clone())
                        .ok()
                        .and_then(|e| e.ollama_version)
                })
            })
            .collect()
    }
}
