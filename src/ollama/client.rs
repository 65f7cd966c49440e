//! HTTP client for Ollama's native API: model listing, `/api/chat` and `/api/generate` as
//! streams of objects, and `/api/embed`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::Value;
use serde_json::value::RawValue;

use super::http1::StreamClient;
use super::ndjson::ChatStream;
use super::wire::{EmbedResponse, ErrorBody, ShowResponse, TagsResponse};

/// Limits how long a call that should be instant (tags, version, show) may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// Most of an error answer's body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Why a call to Ollama failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OllamaError {
    /// No connection could be made (or it broke before an answer).
    #[error("Ollama at {url} is unreachable: {reason}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What the connection attempt reported.
        reason: String,
    },
    /// Ollama answered with an error status.
    #[error("Ollama answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Ollama's message.
        message: String,
    },
    /// The answer was not what Ollama sends (bad JSON, a stream cut short).
    #[error("unexpected answer from Ollama: {0}")]
    Protocol(String),
}

/// A cheap-to-clone client for one Ollama server.
#[derive(Debug, Clone)]
pub struct OllamaClient {
    http: reqwest::Client,
    /// The streamed generations, which carry every token, take a leaner path.
    streams: Arc<Streams>,
    base: Url,
}

#[derive(Debug)]
struct Streams {
    client: StreamClient,
    chat: String,
    generate: String,
}

impl OllamaClient {
    /// A client for the server at `base`.
    pub fn new(base: Url) -> Result<Self, OllamaError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| OllamaError::Protocol(e.to_string()))?;
        let client = StreamClient::new(&base).map_err(OllamaError::Protocol)?;
        let streams = Arc::new(Streams {
            chat: client.target("api/chat"),
            generate: client.target("api/generate"),
            client,
        });
        Ok(Self {
            http,
            streams,
            base,
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Url {
        // `path` is a fixed relative path; joining it onto an http(s) URL cannot fail.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    fn unreachable(&self, e: &reqwest::Error) -> OllamaError {
        OllamaError::Unreachable {
            url: self.base.to_string(),
            reason: e.to_string(),
        }
    }

    /// `GET /api/version`.
    pub async fn version(&self) -> Result<String, OllamaError> {
        let v: Value = self.get_json("api/version").await?;
        Ok(v["version"].as_str().unwrap_or_default().to_owned())
    }

    /// `GET /api/tags`: the installed models.
    pub async fn tags(&self) -> Result<TagsResponse, OllamaError> {
        self.get_json("api/tags").await
    }

    /// `POST /api/show`: details and capabilities of one model.
    pub async fn show(&self, model: &str) -> Result<ShowResponse, OllamaError> {
        let response = self
            .http
            .post(self.url("api/show"))
            .timeout(METADATA_TIMEOUT)
            .json(&serde_json::json!({ "model": model }))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        read_json(response).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, OllamaError> {
        let response = self
            .http
            .get(self.url(path))
            .timeout(METADATA_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        read_json(response).await
    }

    /// `POST /api/show` with the client's own body, answered as Ollama answers it.
    pub async fn show_raw(&self, body: &Value) -> Result<Value, OllamaError> {
        let response = self
            .http
            .post(self.url("api/show"))
            .timeout(METADATA_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        read_json(response).await
    }

    /// `GET /api/ps`: the models loaded in memory.
    pub async fn ps(&self) -> Result<Value, OllamaError> {
        self.get_json("api/ps").await
    }

    /// `POST /api/chat` with a streaming body. Resolves once Ollama sent its status, which it
    /// does together with the first object: model loading happens before this returns.
    /// Dropping the returned stream closes the connection, which stops generation.
    pub async fn chat(&self, body: &RawValue) -> Result<ChatStream, OllamaError> {
        self.stream(&self.streams.chat, body).await
    }

    /// `POST /api/generate` with a streaming body; its objects carry `response` instead of
    /// `message`, which [`ChatChunk`] reads too.
    pub async fn generate(&self, body: &RawValue) -> Result<ChatStream, OllamaError> {
        self.stream(&self.streams.generate, body).await
    }

    /// `POST /api/embed`: one answer with every vector.
    pub async fn embed(&self, body: &RawValue) -> Result<EmbedResponse, OllamaError> {
        let response = self
            .http
            .post(self.url("api/embed"))
            .json(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        read_json(response).await
    }

    async fn stream(&self, target: &str, body: &RawValue) -> Result<ChatStream, OllamaError> {
        let mut answer = self
            .streams
            .client
            .post(target, body.get().as_bytes())
            .await?;
        if !(200..300).contains(&answer.status) {
            let text = answer.body.read_to_end(MAX_ERROR_BODY).await;
            let text = String::from_utf8_lossy(&text.unwrap_or_default()).into_owned();
            return Err(status_error(answer.status, &text));
        }
        Ok(ChatStream::new(answer.body))
    }
}

async fn error_for_status(response: reqwest::Response) -> Result<reqwest::Response, OllamaError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(status_error(status.as_u16(), &text))
}

/// Ollama's errors are `{"error": "..."}`; anything else (a proxy page) is passed on as text.
fn status_error(status: u16, text: &str) -> OllamaError {
    let message = serde_json::from_str::<ErrorBody>(text)
        .map(|b| b.error)
        .unwrap_or_else(|_| text.trim().to_owned());
    OllamaError::Status { status, message }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, OllamaError> {
    let response = error_for_status(response).await?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| OllamaError::Protocol(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| OllamaError::Protocol(e.to_string()))
}
