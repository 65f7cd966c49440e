//! The Seadragon side of a test: real `seadragon gateway` and `seadragon worker` processes on
//! the cluster, each worker with a fake Ollama of its own (one Ollama per worker, as deployed),
//! sharing one SQLite key store and a tier table with limits out of the way.
//!
//! Each process is handed the three node URLs in another order, so the fleet spreads over the
//! cluster and each process fails over along its own path. A process can be killed (`SIGKILL`,
//! as when a machine dies) and started again; its log, across restarts, is a file under
//! `target/tmp/broker_cluster/<test>/`, named in every failure message.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::rabbit::RabbitCluster;
use crate::tally::Runs;
use fake_ollama::{FakeConfig, FakeModel, FakeOllama};

/// The bootstrap admin key of every process.
pub const ADMIN_KEY: &str = "sk-sd-cluster-admin-secret-8d3a6f1c";
/// The tiers of the tier table, lowest priority first.
pub const TIERS: [&str; 3] = ["batch", "standard", "premium"];
/// A process starting, or the fleet getting ready, takes at most this.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How many processes of each kind, and how fast the fakes generate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub gateways: usize,
    pub workers: usize,
    /// Slots per worker, and parallel generations of its fake Ollama.
    pub slots: usize,
    pub token_delay: Duration,
    /// Silence before the first token (model load and prompt processing).
    pub first_token_delay: Duration,
    /// Longest a job may wait in the queue (every tier).
    pub max_wait_secs: u64,
}

impl Default for FleetSpec {
    fn default() -> Self {
        Self {
            gateways: 2,
            workers: 3,
            slots: 1,
            token_delay: Duration::from_millis(10),
            first_token_delay: Duration::ZERO,
            max_wait_secs: 60,
        }
    }
}

/// One `seadragon` process, restartable with the same settings.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    role: &'static str,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` of the current incarnation.
    pub base: String,
    /// Bumped by every start, so a client can tell that the process it talked to was killed.
    pub incarnation: u32,
}

impl Service {
    async fn start(&mut self, cluster: &RabbitCluster) {
        self.incarnation += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        writeln!(log, "==== {} incarnation {}", self.name, self.incarnation).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_seadragon"))
            .arg(self.role)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        cluster.own(child.id().unwrap());
        let (address, listening) = tokio::sync::oneshot::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Copies the log to its file (the process never blocks on a full pipe) and picks the
        // address it listens on out of it.
        tokio::spawn(async move {
            let mut address = Some(address);
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = writeln!(log, "{line}");
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(address) = address.take()
                {
                    let _ = address.send(rest.split_whitespace().next().unwrap().to_owned());
                }
            }
        });
        self.base = tokio::time::timeout(START_LIMIT, listening)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("{} never listened; see {}", self.name, self.log.display()));
        self.child = Some(child);
    }

    /// `SIGKILL`: no shutdown code runs, as when the machine dies.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Started and not killed since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub async fn restart(&mut self, cluster: &RabbitCluster) {
        self.kill().await;
        self.start(cluster).await;
    }
}

/// Two gateways, some workers, their fakes, and keys for every tier.
#[derive(Debug)]
pub struct Fleet {
    pub gateways: Vec<Service>,
    pub workers: Vec<Service>,
    /// `fakes[i]` is worker `i`'s Ollama.
    pub fakes: Vec<FakeOllama>,
    pub http: reqwest::Client,
    /// The broker names of this fleet start with this.
    pub prefix: String,
    pub logs: PathBuf,
    keys: HashMap<&'static str, String>,
    slots: usize,
}

impl Fleet {
    /// Starts the processes of `spec` on `cluster`, creates a key per tier and waits until
    /// every gateway knows every worker.
    pub async fn start(cluster: &RabbitCluster, test: &str, spec: &FleetSpec) -> Self {
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("broker_cluster")
            .join(test);
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("tiers.toml"), tier_table(spec.max_wait_secs)).unwrap();
        let prefix = format!(
            "sdc-{}",
            seadragon::ids::random_alphanumeric(8).to_lowercase()
        );
        let common = |order: usize, ollama: String| {
            vec![
                ("SEADRAGON_AMQP_URL", cluster.urls_in_order(order)),
                ("SEADRAGON_AMQP_PREFIX", prefix.clone()),
                (
                    "SEADRAGON_DATABASE_URL",
                    format!("sqlite://{}", logs.join("keys.db").display()),
                ),
                (
                    "SEADRAGON_CONFIG",
                    logs.join("tiers.toml").display().to_string(),
                ),
                ("SEADRAGON_OLLAMA_URL", ollama),
                ("SEADRAGON_ADMIN_KEY", ADMIN_KEY.to_owned()),
                ("SEADRAGON_SLOTS", spec.slots.to_string()),
                ("SEADRAGON_AGING_SECS", "10".to_owned()),
                ("SEADRAGON_KEEPALIVE_SECS", "1".to_owned()),
                ("SEADRAGON_LISTEN", "127.0.0.1:0".to_owned()),
                // One access line per request would bury the broker events in a soak; a worker
                // logs why a pull failed at debug only, and that explains a worker taking no job.
                (
                    "RUST_LOG",
                    "info,seadragon::access=warn,seadragon::queue::rabbitmq::worker=debug"
                        .to_owned(),
                ),
            ]
        };
        let mut fakes = Vec::new();
        let mut workers = Vec::new();
        for i in 0..spec.workers {
            let fake = FakeOllama::start(FakeConfig {
                models: vec![FakeModel::new("llama3.2:latest", &["completion", "tools"])],
                parallel: spec.slots,
                token_delay: spec.token_delay,
                first_token_delay: spec.first_token_delay,
                ..FakeConfig::default()
            })
            .await;
            let name = format!("worker-{i}");
            workers.push(service(&logs, name, "worker", common(i, fake.url())));
            fakes.push(fake);
        }
        let mut gateways = Vec::new();
        for i in 0..spec.gateways {
            // No Ollama: a gateway learns the models from the workers' announcements.
            let env = common(spec.workers + i, "http://127.0.0.1:9".to_owned());
            gateways.push(service(&logs, format!("gateway-{i}"), "gateway", env));
        }
        for process in workers.iter_mut().chain(gateways.iter_mut()) {
            process.start(cluster).await;
        }
        eprintln!("fleet {prefix}: logs in {}", logs.display());
        let mut fleet = Self {
            gateways,
            workers,
            fakes,
            http: reqwest::Client::new(),
            prefix,
            logs,
            keys: HashMap::new(),
            slots: spec.slots,
        };
        fleet.create_keys().await;
        fleet.wait_ready().await;
        fleet
    }

    /// Slots per worker.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The key of `tier` (one of [`TIERS`]).
    pub fn key(&self, tier: &str) -> &str {
        &self.keys[tier]
    }

    async fn create_keys(&mut self) {
        let admin = format!("{}/admin/keys", self.gateways[0].base);
        for tier in TIERS {
            let created: Value = self
                .http
                .post(&admin)
                .bearer_auth(ADMIN_KEY)
                .json(&json!({"name": tier, "tier": tier}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let key = created["key"]
                .as_str()
                .unwrap_or_else(|| panic!("{created}"));
            self.keys.insert(tier, key.to_owned());
        }
    }

    /// Waits until every worker serves and every gateway knows the keys and every worker.
    pub async fn wait_ready(&self) {
        for worker in &self.workers {
            self.poll(&worker.base, "/api/health", ADMIN_KEY, |status, _| {
                status == 200
            })
            .await;
        }
        let workers = self.workers.len();
        for gateway in &self.gateways {
            // Another gateway's SQLite cache learns a new key within a second.
            let key = self.key(TIERS[0]);
            self.poll(&gateway.base, "/v1/models", key, |status, _| status == 200)
                .await;
            self.poll(&gateway.base, "/admin/queue", ADMIN_KEY, |_, view| {
                view["workers"].as_array().map_or(0, Vec::len) >= workers
            })
            .await;
            self.poll(&gateway.base, "/api/health", ADMIN_KEY, |status, health| {
                status == 200 && health["ollama"]["ok"] == true
            })
            .await;
        }
    }

    /// Polls `base` + `path` until `ok(status, body)`; fails the test after [`START_LIMIT`].
    async fn poll(&self, base: &str, path: &str, key: &str, ok: impl Fn(u16, &Value) -> bool) {
        let mut last = String::new();
        let reached = tokio::time::timeout(START_LIMIT, async {
            loop {
                if let Ok(response) = self
                    .http
                    .get(format!("{base}{path}"))
                    .bearer_auth(key)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if ok(status, &body) {
                        return;
                    }
                    last = format!("{status} {body}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "{base}{path} never got ready; last answer: {last}; logs in {}",
            self.logs.display()
        );
    }

    /// What the fakes did with each prompt, all workers together.
    pub fn runs(&self) -> Runs {
        let mut runs = Runs::default();
        for fake in &self.fakes {
            for (counts, prompts) in [
                (&mut runs.started, fake.started()),
                (&mut runs.finished, fake.finished()),
                (&mut runs.cancelled, fake.cancelled()),
            ] {
                for prompt in prompts {
                    *counts.entry(prompt).or_default() += 1;
                }
            }
        }
        runs
    }

    /// Generations running now on each worker's fake (started, neither finished nor cancelled).
    pub fn running_on(&self, worker: usize) -> Vec<String> {
        let fake = &self.fakes[worker];
        let mut running = fake.started();
        for ended in fake.finished().into_iter().chain(fake.cancelled()) {
            if let Some(at) = running.iter().position(|p| *p == ended) {
                running.remove(at);
            }
        }
        running
    }

    /// How many generations have started on all fakes together.
    pub fn started(&self) -> usize {
        self.fakes.iter().map(|f| f.started().len()).sum()
    }
}

fn service(
    logs: &Path,
    name: String,
    role: &'static str,
    env: Vec<(&'static str, String)>,
) -> Service {
    Service {
        log: logs.join(format!("{name}.log")),
        name,
        role,
        env,
        child: None,
        base: String::new(),
        incarnation: 0,
    }
}

/// Three tiers with limits no test reaches, so only the broker refuses work.
fn tier_table(max_wait_secs: u64) -> String {
    TIERS
        .iter()
        .zip(1..)
        .map(|(name, priority)| {
            format!(
                "[[tiers]]\nname = \"{name}\"\npriority = {priority}\n\
                 requests_per_minute = 1000000\nmax_concurrent = 100000\n\
                 max_queued = 100000\nmax_wait_secs = {max_wait_secs}\n\n"
            )
        })
        .collect()
}
