//! The `seadragon` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use seadragon::app::Role;
use seadragon::config::{Cli, Command, Settings};
use seadragon::{App, Config, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (settings, role) = match cli.command {
        Command::Serve(settings) => (settings, Role::Serve),
        Command::Gateway(settings) => (settings, Role::Gateway),
        Command::Worker(settings) => (settings, Role::Worker),
    };
    telemetry::init(settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(settings.threads))
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(settings, role)),
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, role: Role) -> ExitCode {
    let config = match Config::from_settings(settings) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let app = match App::build_role(config, role).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(secret) = app.created_admin_key() {
        print_admin_key(secret);
    }
    app.run_until_stopped(shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// Shows the generated admin key once; it is stored only as a hash.
#[allow(clippy::print_stdout)]
fn print_admin_key(secret: &str) {
    println!("No admin key existed, so one was created. It is shown only this once:");
    println!("SEADRAGON_ADMIN_KEY={secret}");
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
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
