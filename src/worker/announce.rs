//! What a worker tells the gateways every few seconds over a broker: its slots, its Ollama's
//! models (with each model's `/api/show` answer, so a gateway without an Ollama of its own
//! can answer `/api/show` as that Ollama would) and what that Ollama has loaded (`/api/ps`).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::ollama::wire::ModelEntry;
use crate::queue::WorkerAnnouncement;

/// How often a worker tells the gateways what it offers.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);

/// Keys of `/api/show` that a gateway passes on. The license and the Modelfile can run to
/// tens of kilobytes and no client reads them through a gateway; a template larger than
/// [`TEMPLATE_MAX`] is dropped for the same reason.
const SHOW_KEYS: [&str; 6] = [
    "capabilities",
    "model_info",
    "details",
    "parameters",
    "template",
    "modified_at",
];
const TEMPLATE_MAX: usize = 16 * 1024;

/// Announces this worker's models every few seconds until `shutdown`.
pub(super) async fn run(worker: Worker, shutdown: CancellationToken) {
    // `/api/show` answers by digest: a model's metadata changes only with its digest.
    let mut shows: HashMap<String, Value> = HashMap::new();
    loop {
        let announcement = announcement(&worker, &mut shows).await;
        worker.queue.announce(&announcement).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(ANNOUNCE_EVERY) => {}
        }
    }
}

async fn announcement(worker: &Worker, shows: &mut HashMap<String, Value>) -> WorkerAnnouncement {
    let ollama = &worker.ollama;
    let version = ollama.version().await.ok();
    let (models, ollama_ok) = match ollama.tags().await {
        Ok(tags) => {
            shows.retain(|digest, _| tags.models.iter().any(|m| &m.digest == digest));
            let mut models = Vec::new();
            for mut model in tags.models {
                model.ollama_version.clone_from(&version);
                model.show = show(worker, shows, &model).await;
                models.extend(serde_json::to_value(model).ok());
            }
            (models, true)
        }
        Err(e) => {
            tracing::debug!(error = %e, "Ollama did not list its models");
            (Vec::new(), false)
        }
    };
    let loaded = match ollama.ps().await {
        Ok(ps) => ps
            .get("models")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    WorkerAnnouncement {
        worker: worker.name.clone(),
        slots: worker.slots,
        models,
        ollama_ok,
        loaded,
    }
}

/// The model's `/api/show` answer, trimmed to [`SHOW_KEYS`]; asked once per digest.
async fn show(
    worker: &Worker,
    shows: &mut HashMap<String, Value>,
    model: &ModelEntry,
) -> Option<Value> {
    if let Some(known) = shows.get(&model.digest) {
        return Some(known.clone());
    }
    let answer = worker
        .ollama
        .show_raw(&json!({ "model": model.name }))
        .await
        .map_err(
            |e| tracing::debug!(model = %model.name, error = %e, "Ollama did not show a model"),
        )
        .ok()?;
    let trimmed: Map<String, Value> = SHOW_KEYS
        .iter()
        .filter_map(|key| Some(((*key).to_owned(), answer.get(*key)?.clone())))
        .filter(|(key, value)| {
            key != "template" || value.as_str().is_none_or(|t| t.len() <= TEMPLATE_MAX)
        })
        .collect();
    let trimmed = Value::Object(trimmed);
    shows.insert(model.digest.clone(), trimmed.clone());
    Some(trimmed)
}
