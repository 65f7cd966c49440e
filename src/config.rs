//! Settings: every one is a flag and an environment variable, the TOML file adds tiers and
//! aliases. They are parsed once into a typed [`Config`] and validated before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// The roles of one binary (DESIGN §1).
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
    /// Bootstrap admin key.
    #[arg(long, env = "SEADRAGON_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Concurrent generations per worker (Ollama's OLLAMA_NUM_PARALLEL).
    #[arg(long, env = "SEADRAGON_SLOTS", default_value_t = 1)]
    pub slots: usize,
    /// A queued job rises one priority level per this many seconds.
    #[arg(long, env = "SEADRAGON_AGING_SECS", default_value_t = 10.0)]
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
}

/// Upper bound of `SEADRAGON_SLOTS`. A slot is one idle task, so the bound only catches typos;
/// it is high enough for a worker in front of a load-balanced pool of Ollama servers, or an
/// unlimited backend such as the benchmark's fake, where nothing should queue.
pub const MAX_SLOTS: usize = 4096;

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

/// One API-key tier: its base priority and its limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Name used by keys (`free`, `pro`, ...).
    pub name: String,
    /// Base priority, 1..=3; level 4 is reached only by aging.
    pub priority: u8,
    /// Requests per minute per key.
    #[serde(default = "default_rpm")]
    pub requests_per_minute: u32,
    /// Running plus queued requests per key.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// Queued jobs of this tier across the system.
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
    /// Seconds a job may stay queued before it fails without running.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
}

fn default_rpm() -> u32 {
    60
}
fn default_max_concurrent() -> u32 {
    4
}
fn default_max_queued() -> usize {
    1000
}
fn default_max_wait_secs() -> u64 {
    600
}

impl TierConfig {
    fn new(name: &str, priority: u8, requests_per_minute: u32, max_concurrent: u32) -> Self {
        Self {
            name: name.to_owned(),
            priority,
            requests_per_minute,
            max_concurrent,
            max_queued: default_max_queued(),
            max_wait_secs: default_max_wait_secs(),
        }
    }

    /// How long a job of this tier may wait in the queue.
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs)
    }
}

/// The default tier table of DESIGN §3.
pub fn default_tiers() -> Vec<TierConfig> {
    vec![
        TierConfig::new("free", 1, 60, 4),
        TierConfig::new("pro", 2, 600, 16),
        TierConfig::new("enterprise", 3, 6000, 64),
    ]
}

/// The part of the TOML file Seadragon reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    tiers: Option<Vec<TierConfig>>,
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
    /// Time after which a queued job rises one priority level.
    pub aging_interval: Duration,
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
            aging_interval: Duration::from_secs(10),
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
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| invalid("SEADRAGON_OLLAMA_URL", "must be an http(s) URL"))?;
        let config = Self {
            listen: settings.listen,
            ollama_url,
            amqp_url: settings.amqp_url.filter(|u| !u.is_empty()),
            amqp_prefix: settings.amqp_prefix,
            database_url: settings.database_url,
            admin_key: settings.admin_key.filter(|k| !k.is_empty()),
            slots: settings.slots,
            aging_interval: seconds("SEADRAGON_AGING_SECS", settings.aging_secs)?,
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

    /// Checks the ranges DESIGN §2 and §8 promise to enforce at start-up.
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
        if self.max_body_bytes < 1024 {
            return Err(invalid("SEADRAGON_MAX_BODY_BYTES", "must be at least 1024"));
        }
        if self.tiers.is_empty() {
            return Err(invalid("tiers", "at least one tier is needed"));
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            if tier.name.trim().is_empty() {
                return Err(invalid("tiers", "a tier has an empty name"));
            }
            if !(1..=3).contains(&tier.priority) {
                return Err(invalid(
                    "tiers",
                    format!("tier {:?}: priority must be 1, 2 or 3", tier.name),
                ));
            }
            if tier.max_queued == 0 || tier.max_concurrent == 0 || tier.requests_per_minute == 0 {
                return Err(invalid(
                    "tiers",
                    format!("tier {:?}: limits must be positive", tier.name),
                ));
            }
            if self.tiers[..i].iter().any(|t| t.name == tier.name) {
                return Err(invalid(
                    "tiers",
                    format!("tier {:?} is defined twice", tier.name),
                ));
            }
        }
        Ok(())
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
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["seadragon", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(s) | Command::Gateway(s) | Command::Worker(s) => s,
        }
    }

    #[test]
    fn defaults_match_the_design_table() {
        let c = Config::from_settings(settings(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.ollama_url.as_str(), "http://127.0.0.1:11434/");
        assert_eq!(c.slots, 1);
        assert_eq!(c.aging_interval, Duration::from_secs(10));
        assert_eq!(c.tiers.len(), 3);
        assert_eq!(c.top_tier().name, "enterprise");
    }

    #[test]
    fn zero_slots_and_non_positive_aging_are_refused() {
        let e = Config::from_settings(settings(&["--slots", "0"])).unwrap_err();
        assert!(e.to_string().contains("SEADRAGON_SLOTS"), "{e}");
        let e = Config::from_settings(settings(&["--aging-secs", "0"])).unwrap_err();
        assert!(e.to_string().contains("SEADRAGON_AGING_SECS"), "{e}");
        let e = Config::from_settings(settings(&["--ollama-url", "ftp://x"])).unwrap_err();
        assert!(e.to_string().contains("SEADRAGON_OLLAMA_URL"), "{e}");
    }

    #[test]
    fn toml_file_replaces_tiers_and_adds_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seadragon.toml");
        std::fs::write(
            &path,
            "[[tiers]]\nname = \"batch\"\npriority = 1\n\n[aliases]\n\"gpt-4o\" = \"default\"\n",
        )
        .unwrap();
        let c = Config::from_settings(settings(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.tiers.len(), 1);
        assert_eq!(c.tiers[0].requests_per_minute, 60);
        assert_eq!(c.aliases["gpt-4o"], "default");
    }

    #[test]
    fn bad_tier_tables_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        for body in [
            "[[tiers]]\nname = \"x\"\npriority = 4\n",
            "[[tiers]]\nname = \"x\"\npriority = 1\n[[tiers]]\nname = \"x\"\npriority = 2\n",
            "[[tiers]]\nname = \"x\"\npriority = 1\ncolour = 3\n",
        ] {
            std::fs::write(&path, body).unwrap();
            let r = Config::from_settings(settings(&["--config", path.to_str().unwrap()]));
            assert!(r.is_err(), "accepted {body:?}");
        }
    }
}
