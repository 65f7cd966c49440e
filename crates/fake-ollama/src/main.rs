//! `fake-ollama`: the fake Ollama as a process, for scripts that run a real gateway without a
//! real Ollama (e.g. `scripts/schemathesis.sh`). It prints `fake Ollama listening on URL` once
//! it listens, then serves until SIGTERM or ctrl-c. It records nothing, so it can run for long.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fake_ollama::{FakeConfig, FakeModel, FakeOllama};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "fake-ollama",
    about = "A fake Ollama (native API, scripted by prompts such as `#tool` or `#long 50`)"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:11434")]
    listen: SocketAddr,
    /// Generations that run at once (`OLLAMA_NUM_PARALLEL`).
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Requests that may wait for a slot before the next gets a 503 (`OLLAMA_MAX_QUEUE`).
    #[arg(long, default_value_t = 512)]
    max_queue: usize,
    /// Time to the first token, in milliseconds.
    #[arg(long, default_value_t = 0)]
    first_token_ms: u64,
    /// Time between tokens, in milliseconds.
    #[arg(long, default_value_t = 1)]
    token_ms: u64,
    /// Another installed model, as `NAME=CAPABILITY,...` (e.g. `qwen2.5-coder:1.5b=completion,insert`);
    /// repeatable. It joins the default ones (llama3.2, qwen3:8b, llava:7b, all-minilm).
    #[arg(long = "model", value_parser = parse_model)]
    models: Vec<FakeModel>,
}

fn parse_model(value: &str) -> Result<FakeModel, String> {
    let (name, capabilities) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not NAME=CAPABILITY,..."))?;
    let capabilities: Vec<&str> = capabilities.split(',').filter(|c| !c.is_empty()).collect();
    Ok(FakeModel::new(name, &capabilities))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut models = FakeConfig::default().models;
    models.extend(args.models);
    let config = FakeConfig {
        models,
        parallel: args.parallel,
        max_queue: args.max_queue,
        first_token_delay: Duration::from_millis(args.first_token_ms),
        token_delay: Duration::from_millis(args.token_ms),
        record: false,
        ..FakeConfig::default()
    };
    let fake = match FakeOllama::bind(args.listen, config).await {
        Ok(fake) => fake,
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "fake-ollama: cannot listen on {}: {error}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    // Scripts read this line to learn the port when they asked for port 0.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "fake Ollama listening on {}", fake.url());
    let _ = stdout.flush();
    shutdown_signal().await;
    ExitCode::SUCCESS
}

/// SIGTERM (how scripts and supervisors stop it) or ctrl-c.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
