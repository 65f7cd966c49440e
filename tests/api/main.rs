//! Integration tests: the whole gateway on a random port, a fake Ollama behind it, real HTTP
//! clients in front (the async-openai SDK and plain reqwest for exact SSE framing).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    missing_debug_implementations
)]

mod admin_keys;
mod admin_models;
mod admin_queue;
mod admin_stats;
mod binary;
mod chat;
mod cluster;
mod conformance;
mod dashboard;
mod distributed;
mod docs;
mod errors;
mod health;
mod helpers;
mod ide_distributed;
mod ide_ollama;
mod ide_ollama_errors;
mod ide_openai;
mod ide_responses;
mod keys;
mod load;
#[path = "../support/logs.rs"]
mod logs;
mod metrics;
mod native_policy;
mod openapi;
mod overload;
mod path_keys;
#[path = "../support/postgres.rs"]
mod postgres;
mod process;
mod properties;
mod python_clients;
mod queue_contract;
mod rabbit_jobs;
mod scheduling;
mod scheduling_bounds;
mod sdk;
mod shared_store;
mod shutdown;
mod tools_and_reasoning;
