//! Seadragon: an OpenAI-compatible gateway that puts a tiered priority queue in front of Ollama.
//!
//! Map of the crate, in the order a request travels:
//!
//! - [`config`]: the typed settings, parsed once from flags, environment and the TOML file.
//! - [`api`]: the HTTP surface (OpenAI routes, Ollama's native API in `api/ollama/`, the admin
//!   API in `api/admin/`, health, keys in the path under `/k/<key>/`), its one error type, and
//!   the OpenAPI document generated from the handlers (`/openapi.json`, Swagger UI at `/docs`).
//! - [`auth`]: API keys, their store (SQLite, or PostgreSQL shared by many gateways) and the
//!   extractors that guard routes.
//! - [`openai`]: OpenAI wire types and the pure conversions between OpenAI and Ollama shapes,
//!   shared by the gateway (request side) and the worker (stream side): chat, text completions,
//!   embeddings, one module each.
//! - [`ollama_api`]: Ollama's native API as the gateway serves it: client requests to jobs,
//!   job events back to Ollama's NDJSON objects.
//! - [`queue`]: the traits the gateway and the workers share, the scheduling rule (levels,
//!   rationed rescues of starving jobs, predicted waits), the slow-client policy,
//!   and both backends (embedded and RabbitMQ).
//! - [`worker`]: takes jobs in priority order and relays them to the Ollama endpoint of their
//!   kind (`/api/chat`, `/api/generate`, `/api/embed`).
//! - [`ollama`]: Ollama's native wire types and its HTTP client.
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`limits`]: per-key request rate and concurrency of each tier.
//! - [`native_policy`]: which of Ollama's own `options` and `keep_alive` a tier's keys may set.
//! - [`catalog`]: which models exist and what `"default"` and aliases resolve to.
//! - [`stats`]: in-memory request statistics for the admin API, fed once per request that ran a job.
//! - [`app`]: wires the pieces together; `main` and the tests both start the system through it.
//! - [`http_server`]: accepts connections and serves the router on each over HTTP/1.1.
//! - [`ids`]: random identifiers and secrets.
//! - [`telemetry`]: log output and filtering; [`timeline`]: per-request stage timestamps at
//!   `debug`.

pub mod api;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod http_server;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod native_policy;
pub mod ollama;
pub mod ollama_api;
pub mod openai;
pub mod queue;
pub mod stats;
pub mod telemetry;
pub mod timeline;
pub mod worker;

pub use app::App;
pub use config::Config;
