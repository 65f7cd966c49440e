//! Name resolution, and how the model list is fetched from Ollama: shared by a burst of
//! callers, and refreshed behind requests once it is past its freshness.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

fn entry(name: &str) -> ModelEntry {
    ModelEntry {
        name: name.into(),
        model: name.into(),
        ..ModelEntry::default()
    }
}

#[test]
fn versions_order_numerically() {
    assert!(version_key("0.9.0") < version_key("0.12.0"));
    assert!(version_key("0.6.4-rc1") == version_key("0.6.4"));
}

#[test]
fn an_untagged_name_means_latest_and_tags_must_match() {
    let models = [entry("llama3.2:latest"), entry("qwen3:8b")];
    assert_eq!(
        find(&models, "llama3.2").as_deref(),
        Some("llama3.2:latest")
    );
    assert_eq!(find(&models, "qwen3:8b").as_deref(), Some("qwen3:8b"));
    assert_eq!(find(&models, "qwen3"), None);
    assert_eq!(find(&models, "llama3.2:1b"), None);
}

/// A fake Ollama answering `/api/tags` with one model: it counts the calls it receives and
/// answers each after `delay`, and only while `open` says so.
struct TagsServer {
    url: String,
    calls: Arc<AtomicUsize>,
    open: tokio::sync::watch::Sender<bool>,
}

impl TagsServer {
    async fn start(delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let (open, gate) = tokio::sync::watch::channel(true);
        let counted = Arc::clone(&calls);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (counted, mut gate) = (Arc::clone(&counted), gate.clone());
                tokio::spawn(async move {
                    let mut head = [0u8; 4096];
                    let _ = tcp.read(&mut head).await;
                    counted.fetch_add(1, AtomicOrdering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let _ = gate.wait_for(|open| *open).await;
                    let body = r#"{"models":[{"name":"m:latest","model":"m:latest"}]}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { url, calls, open }
    }

    fn calls(&self) -> usize {
        self.calls.load(AtomicOrdering::SeqCst)
    }

    async fn catalog(&self) -> Arc<ModelCatalog> {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::connect(&format!("sqlite://{}/keys.db", dir.path().display()))
            .await
            .unwrap();
        let ollama = OllamaClient::new(self.url.parse().unwrap()).unwrap();
        Arc::new(ModelCatalog::new(
            ModelSource::Ollama(ollama),
            store,
            BTreeMap::new(),
        ))
    }
}

/// Makes the catalog's list `age` old.
fn age_list(catalog: &ModelCatalog, age: Duration) {
    let mut cache = catalog.lists.cache.lock().unwrap();
    let (at, _) = cache.as_mut().expect("a list was read");
    *at = Instant::now().checked_sub(age).unwrap();
}

/// A burst of callers finding no fresh list shares one `/api/tags` call (two at most:
/// callers that asked before the first call started may need a second).
#[tokio::test]
async fn a_burst_of_callers_asks_ollama_for_its_models_once() {
    // Slow enough for every caller to arrive while the first call runs.
    let ollama = TagsServer::start(Duration::from_millis(100)).await;
    let catalog = ollama.catalog().await;
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let catalog = Arc::clone(&catalog);
            tokio::spawn(async move { catalog.models().await.map(|m| m.len()) })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), 1);
    }
    let calls = ollama.calls();
    assert!((1..=2).contains(&calls), "{calls} calls to /api/tags");
}

#[tokio::test]
async fn a_list_past_its_freshness_is_served_at_once_and_refreshed_behind() {
    let ollama = TagsServer::start(Duration::ZERO).await;
    let catalog = ollama.catalog().await;
    assert_eq!(catalog.models().await.unwrap().len(), 1);
    assert_eq!(ollama.calls(), 1);
    age_list(&catalog, FRESH_FOR + Duration::from_secs(1));
    ollama.open.send_replace(false);
    // Ollama holds its answer back, yet the callers get the old list at once, and only one
    // refresh is asked for.
    for _ in 0..10 {
        let models = tokio::time::timeout(Duration::from_secs(5), catalog.models())
            .await
            .expect("served without waiting for Ollama");
        assert_eq!(models.unwrap().len(), 1);
    }
    while ollama.calls() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ollama.open.send_replace(true);
    while catalog.lists.cached().unwrap().0.elapsed() > FRESH_FOR {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ollama.calls(), 2, "one refresh for the ten callers");
}

#[tokio::test]
async fn a_list_in_use_never_goes_stale() {
    let ollama = TagsServer::start(Duration::ZERO).await;
    let catalog = ollama.catalog().await;
    let started = Instant::now();
    while started.elapsed() < FRESH_FOR + REFRESH_AT {
        catalog.models().await.unwrap();
        let (at, _) = catalog.lists.cached().unwrap();
        assert!(at.elapsed() < FRESH_FOR, "went stale while in use");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ollama.calls() >= 3, "{} reads", ollama.calls());
}

#[tokio::test]
async fn a_list_too_old_to_serve_is_read_again_before_answering() {
    let ollama = TagsServer::start(Duration::ZERO).await;
    let catalog = ollama.catalog().await;
    catalog.models().await.unwrap();
    age_list(&catalog, SERVE_STALE_FOR + Duration::from_secs(1));
    ollama.open.send_replace(false);
    let waiting = tokio::time::timeout(Duration::from_millis(300), catalog.models()).await;
    assert!(waiting.is_err(), "answered from a list too old to serve");
    ollama.open.send_replace(true);
    assert_eq!(catalog.models().await.unwrap().len(), 1);
    assert!(catalog.lists.cached().unwrap().0.elapsed() < FRESH_FOR);
}
