//! Settings: every one is a flag and an environment variable, the TOML file adds tiers and
//! aliases. They are parsed once into a typed [`Config`] and validated before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod tiers;

pub use tiers::{SchedulingConfig, TierConfig, default_tiers};

use clap::{Args, Parser, Subcommand};
use reqwest::Url;
use serde::Deserialize;

/// The command line of the `seadragon` binary.
#[derive(Debug, Parser)]
#[command(
    name = "seadragon",
    version,
    about = "OpenAI-compatible priority gateway for Ollama"
)]
pub struct Cli {
    /// The role this process plays.
    #[command(subcommand)]
    pub command: Command,
}

/// The roles of one binary: gateway and worker together, or either alone over RabbitMQ.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Gateway and worker in one process (embedded queue unless SEADRAGON_AMQP_URL is set).
    Serve(Settings),
    /// HTTP only; publishes jobs to RabbitMQ.
    Gateway(Settings),
    /// Consumes jobs from RabbitMQ and runs them on Ollama.
    Worker(Settings),
}

/// Raw settings as given on the command line or in the environment.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// HTTP listen address.
    #[arg(long, env = "SEADRAGON_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Ollama base URL.
    #[arg(
        long,
        env = "SEADRAGON_OLLAMA_URL",
        default_value = "http://127.0.0.1:11434"
    )]
    pub ollama_url: String,
    /// RabbitMQ URL; unset means the embedded queue.
    #[arg(long, env = "SEADRAGON_AMQP_URL")]
    pub amqp_url: Option<String>,
    /// Prefix of every RabbitMQ queue and exchange name (deployments sharing a broker differ here).
    #[arg(long, env = "SEADRAGON_AMQP_PREFIX", default_value = "seadragon")]
    pub amqp_prefix: String,
    /// Key store location.
    #[arg(
        long,
        env = "SEADRAGON_DATABASE_URL",
        default_value = "sqlite://seadragon.db"
    )]
    pub database_url: String,
    /// Bootstrap admin key: at least 24 characters, 12 of them different. Prefer the
    /// environment variable: a flag's value shows in `ps` to every user of the machine.
    #[arg(long, env = "SEADRAGON_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Concurrent generations per worker (Ollama's OLLAMA_NUM_PARALLEL).
    #[arg(long, env = "SEADRAGON_SLOTS", default_value_t = 1)]
    pub slots: usize,
    /// Threads running requests and relays (see README: one keeps a lone request off
    /// hand-offs between threads; more help when many large bodies are parsed at once).
    #[arg(long, env = "SEADRAGON_THREADS", default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
    /// Default starvation time: a job queued this long may be rescued above every tier (a
    /// tier's `starvation_secs` in the TOML file overrides it).
    #[arg(long, env = "SEADRAGON_AGING_SECS", default_value_t = 30.0)]
    pub aging_secs: f64,
    /// TOML file with tiers and aliases.
    #[arg(long, env = "SEADRAGON_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest accepted request body in bytes (images travel inside it).
    #[arg(long, env = "SEADRAGON_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds between SSE keep-alive comments while a streamed job waits.
    #[arg(long, env = "SEADRAGON_KEEPALIVE_SECS", default_value_t = 5.0)]
    pub keepalive_secs: f64,
    /// Longest a single generation may run before it is stopped with finish_reason "length".
    #[arg(
        long,
        env = "SEADRAGON_GENERATION_TIMEOUT_SECS",
        default_value_t = 900.0
    )]
    pub generation_timeout_secs: f64,
    /// On SIGTERM, how long running generations may take to finish before streams are closed.
    #[arg(long, env = "SEADRAGON_DRAIN_SECS", default_value_t = 30.0)]
    pub drain_secs: f64,
    /// Log lines as text for people, or one JSON object per line for log shippers.
    #[arg(long, env = "SEADRAGON_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How long a streaming client may leave its events unread (its buffer full) before it
    /// is dropped and its job cancelled, freeing the worker's slot.
    #[arg(long, env = "SEADRAGON_SLOW_CLIENT_SECS", default_value_t = 30.0)]
    pub slow_client_secs: f64,
}

/// Upper bound of `SEADRAGON_SLOTS`. A slot is one idle task, so the bound only catches typos;
/// it is high enough for a worker in front of a load-balanced pool of Ollama servers, or an
/// unlimited backend such as the benchmark's fake, where nothing should queue.
pub const MAX_SLOTS: usize = 4096;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Largest `SEADRAGON_MAX_BODY_BYTES`: a body is held in memory while its job waits.
const MAX_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// Why the settings were refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value outside its range.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The setting's environment name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// The part of the TOML file Seadragon reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    tiers: Option<Vec<TierConfig>>,
    #[serde(default)]
    scheduling: SchedulingConfig,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

/// The validated configuration every component is built from.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Ollama base URL.
    pub ollama_url: Url,
    /// RabbitMQ URL, when the queue is distributed.
    pub amqp_url: Option<String>,
    /// Prefix of RabbitMQ names.
    pub amqp_prefix: String,
    /// Key store location.
    pub database_url: String,
    /// Bootstrap admin key.
    pub admin_key: Option<String>,
    /// Concurrent generations per worker.
    pub slots: usize,
    /// Starvation time of tiers that set none (`SEADRAGON_AGING_SECS`).
    pub default_starvation: Duration,
    /// Most of the recent dispatches that rescues may take.
    pub rescue_share: f64,
    /// How long a stalled streaming client may hold its job.
    pub slow_client: Duration,
    /// Tiers, highest base priority last.
    pub tiers: Vec<TierConfig>,
    /// Client model names mapped to installed models or `"default"`.
    pub aliases: BTreeMap<String, String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Interval of SSE keep-alive comments while a job waits.
    pub keepalive_interval: Duration,
    /// Hard limit of one generation.
    pub generation_timeout: Duration,
    /// Time running work gets to finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ollama_url: default_ollama_url(),
            amqp_url: None,
            amqp_prefix: "seadragon".to_owned(),
            database_url: "sqlite://seadragon.db".to_owned(),
            admin_key: None,
            slots: 1,
            default_starvation: Duration::from_secs(30),
            rescue_share: 0.1,
            slow_client: Duration::from_secs(30),
            tiers: default_tiers(),
            aliases: BTreeMap::new(),
            max_body_bytes: 16 * 1024 * 1024,
            keepalive_interval: Duration::from_secs(5),
            generation_timeout: Duration::from_secs(900),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Validates raw settings and reads the TOML file they name.
    pub fn from_settings(settings: Settings) -> Result<Self, ConfigError> {
        let file = match &settings.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let ollama_url = Url::parse(&settings.ollama_url)
            .ok()
            // The build carries no TLS: Ollama is reached on a trusted network.
            .filter(|u| u.scheme() == "http" && u.host_str().is_some())
            .ok_or_else(|| {
                invalid(
                    "SEADRAGON_OLLAMA_URL",
                    "must be an http:// URL (Ollama is reached without TLS)",
                )
            })?;
        let config = Self {
            listen: settings.listen,
            ollama_url,
            amqp_url: settings.amqp_url.filter(|u| !u.is_empty()),
            amqp_prefix: settings.amqp_prefix,
            database_url: settings.database_url,
            admin_key: settings.admin_key.filter(|k| !k.is_empty()),
            slots: settings.slots,
            default_starvation: seconds("SEADRAGON_AGING_SECS", settings.aging_secs)?,
            rescue_share: file.scheduling.rescue_share,
            slow_client: seconds("SEADRAGON_SLOW_CLIENT_SECS", settings.slow_client_secs)?,
            tiers: file.tiers.unwrap_or_else(default_tiers),
            aliases: file.aliases,
            max_body_bytes: settings.max_body_bytes,
            keepalive_interval: seconds("SEADRAGON_KEEPALIVE_SECS", settings.keepalive_secs)?,
            generation_timeout: seconds(
                "SEADRAGON_GENERATION_TIMEOUT_SECS",
                settings.generation_timeout_secs,
            )?,
            drain_timeout: seconds("SEADRAGON_DRAIN_SECS", settings.drain_secs)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting's range at start-up, with a message naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_SLOTS).contains(&self.slots) {
            return Err(invalid(
                "SEADRAGON_SLOTS",
                format!("must be between 1 and {MAX_SLOTS}"),
            ));
        }
        let prefix_ok = !self.amqp_prefix.is_empty()
            && self.amqp_prefix.len() <= 100
            && self
                .amqp_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !prefix_ok {
            return Err(invalid(
                "SEADRAGON_AMQP_PREFIX",
                "use 1 to 100 letters, digits, '-', '_' or '.'",
            ));
        }
        if !(1024..=MAX_BODY_LIMIT).contains(&self.max_body_bytes) {
            return Err(invalid(
                "SEADRAGON_MAX_BODY_BYTES",
                format!("must be between 1024 and {MAX_BODY_LIMIT}"),
            ));
        }
        if let Some(key) = &self.admin_key {
            check_admin_key(key)?;
        }
        tiers::validate(&self.tiers)?;
        if !(self.rescue_share > 0.0 && self.rescue_share <= 0.5) {
            return Err(invalid(
                "scheduling.rescue_share",
                "must be above 0 and at most 0.5",
            ));
        }
        Ok(())
    }

    /// What the queue backends schedule by.
    pub fn queue_policy(&self) -> crate::queue::QueuePolicy {
        let tiers = self.tiers.iter().map(|t| {
            let rule = crate::queue::TierRule {
                priority: t.priority,
                starvation: t.starvation(self.default_starvation),
                max_queued: Some(t.max_queued),
            };
            (t.name.clone(), rule)
        });
        crate::queue::QueuePolicy {
            tiers: tiers.collect(),
            default_starvation: self.default_starvation,
            rescue_share: self.rescue_share,
            slow_client: self.slow_client,
        }
    }

    /// The tier called `name`.
    pub fn tier(&self, name: &str) -> Option<&TierConfig> {
        self.tiers.iter().find(|t| t.name == name)
    }

    /// The tier with the highest base priority, given to the bootstrap admin key.
    pub fn top_tier(&self) -> &TierConfig {
        // validate() guarantees at least one tier; index 0 is only a fallback for an unvalidated config.
        self.tiers
            .iter()
            .max_by_key(|t| t.priority)
            .unwrap_or(&self.tiers[0])
    }
}

#[allow(clippy::expect_used)]
fn default_ollama_url() -> Url {
    Url::parse("http://127.0.0.1:11434").expect("the literal is a valid URL")
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Shortest bootstrap admin key, and fewest different characters in it.
const ADMIN_KEY_MIN_LEN: usize = 24;
const ADMIN_KEY_MIN_DISTINCT: usize = 12;

/// Refuses a bootstrap admin key that is short, repetitive or not printable: it guards every
/// key and the queue, and a guessable one gives all of it away. The message never repeats it.
fn check_admin_key(key: &str) -> Result<(), ConfigError> {
    let distinct = key.chars().collect::<std::collections::BTreeSet<_>>().len();
    if key.chars().count() < ADMIN_KEY_MIN_LEN
        || distinct < ADMIN_KEY_MIN_DISTINCT
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(invalid(
            "SEADRAGON_ADMIN_KEY",
            format!(
                "too weak: use at least {ADMIN_KEY_MIN_LEN} printable characters without spaces, \
                 {ADMIN_KEY_MIN_DISTINCT} of them different (e.g. the output of \
                 `openssl rand -hex 24`), or leave it unset to have one created"
            ),
        ));
    }
    Ok(())
}

fn seconds(name: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(invalid(name, "must be a number of seconds above 0"))
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
