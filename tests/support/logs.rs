//! Keeps the suite's logs for `scripts/log-secrets.py`, which fails when a secret appears in
//! them. With `SEADRAGON_TEST_LOG_DIR` set (`scripts/test.sh` sets it), every `seadragon`
//! process the tests start logs at debug level and its stderr is also appended to
//! `<dir>/<role>-<pid>.log`; the gateways inside a test binary log there at debug level too.
//! Next to each log, `<name>.secrets` lists the secrets that process was given (admin key,
//! passwords of the database and broker URLs), so the check knows what to look for besides
//! the shapes of keys and `Authorization` values. Without the variable nothing is written and
//! processes log at `info` as before.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, Once};

/// Where logs go, when they are kept.
pub fn dir() -> Option<PathBuf> {
    std::env::var_os("SEADRAGON_TEST_LOG_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// `RUST_LOG` for a child: debug when its log is checked, so that what only debug logging
/// would leak is caught too.
pub fn rust_log() -> &'static str {
    if dir().is_some() { "debug" } else { "info" }
}

/// The secrets among a process's settings: the admin key, and the password of every URL
/// (`SEADRAGON_AMQP_URL` may list several, separated by commas).
pub fn secrets_of(env: &[(&str, String)]) -> Vec<String> {
    let mut secrets = Vec::new();
    for (name, value) in env {
        match *name {
            "SEADRAGON_ADMIN_KEY" => secrets.push(format!("key {value}")),
            "SEADRAGON_DATABASE_URL" | "SEADRAGON_AMQP_URL" => {
                for url in value.split(',') {
                    if let Some(password) = reqwest::Url::parse(url.trim())
                        .ok()
                        .and_then(|u| u.password().map(str::to_owned))
                    {
                        secrets.push(format!("password {password}"));
                    }
                }
            }
            _ => {}
        }
    }
    secrets
}

/// Opens `<dir>/<name>.log` for appending and writes `<name>.secrets`; `None` when logs are
/// not kept (or the directory cannot be written, which the check then reports as no logs).
pub fn open(name: &str, secrets: &[String]) -> Option<File> {
    let dir = dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let mut listed = File::create(dir.join(format!("{name}.secrets"))).ok()?;
    for secret in secrets {
        writeln!(listed, "{secret}").ok()?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .ok()
}

/// Tracing for the gateways a test binary runs in its own process: into the log directory at
/// debug level when logs are kept, otherwise stderr at `default` (or `RUST_LOG`). `secrets`
/// are the keys the binary's gateways get; the test broker's password is added here, the test
/// databases' by `postgres.rs`.
pub fn init_in_process(default: &str, secrets: &[&str]) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| install(default, secrets));
}

fn install(default: &str, secrets: &[&str]) {
    let mut listed: Vec<String> = secrets.iter().map(|s| format!("key {s}")).collect();
    // Read here, not through the product's config: the suite's own setting.
    let broker =
        std::env::var_os("SEADRAGON_TEST_AMQP_URL").map(|url| url.to_string_lossy().into_owned());
    if let Some(url) = broker {
        listed.extend(secrets_of(&[("SEADRAGON_AMQP_URL", url)]));
    }
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tests".to_owned());
    let name = format!("in-process-{binary}-{}", std::process::id());
    match open(&name, &listed) {
        Some(file) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
                .with_writer(Mutex::new(file))
                .with_ansi(false)
                .try_init();
        }
        None => seadragon::telemetry::init_with_default(default),
    }
}
