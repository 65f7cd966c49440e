//! Starts real `seadragon` processes from the same build as this benchmark, finds the address
//! each listens on, and prepares them for load: readiness, and a user key of the `bench` tier.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{BenchError, Context as _, ContextNone as _};

/// How long a process may take to print its address, or a gateway to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a process may take to shut down after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A tier that never limits anything, so only Seadragon's own cost is measured.
const TIERS_TOML: &str = "[[tiers]]\nname = \"bench\"\npriority = 3\nrequests_per_minute = 100000000\nmax_concurrent = 100000\nmax_queued = 1000000\nmax_wait_secs = 600\n";

/// The `seadragon` binary next to this one, refused when older than the library it was
/// built from (then `cargo run --bin bench` rebuilt the library but not `seadragon`).
pub fn seadragon_binary() -> Result<PathBuf, BenchError> {
    let me = std::env::current_exe().ctx("cannot locate the bench binary")?;
    let dir = me.parent().ctx_none("the bench binary has no directory")?;
    let exe = dir.join("seadragon");
    let built = std::fs::metadata(&exe)
        .and_then(|m| m.modified())
        .ctx(&format!(
            "no seadragon binary at {}; build it with `cargo build --release`",
            exe.display()
        ))?;
    let lib = std::fs::metadata(dir.join("libseadragon.rlib")).and_then(|m| m.modified());
    if let Ok(lib) = lib
        && lib > built
    {
        return Err(BenchError(format!(
            "{} is older than the library it is built from; run `cargo build --release` first",
            exe.display()
        )));
    }
    Ok(exe)
}

/// A scratch directory for key stores and the tier file, removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Creates a fresh directory under the system's temporary directory.
    pub fn new() -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!(
            "seadragon-bench-{}-{}",
            std::process::id(),
            seadragon::ids::random_alphanumeric(8)
        ));
        std::fs::create_dir_all(&dir).ctx("cannot create a scratch directory")?;
        std::fs::write(dir.join("tiers.toml"), TIERS_TOML).ctx("cannot write the tier file")?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What every Seadragon process of one scenario shares.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The `seadragon` binary.
    pub exe: PathBuf,
    /// Key store and tier file location.
    pub dir: PathBuf,
    /// Name of the key store file (one per scenario).
    pub db: String,
    /// Bootstrap admin key.
    pub admin_key: String,
    /// The fake Ollama.
    pub ollama_url: String,
    /// Slots per worker.
    pub slots: usize,
    /// RabbitMQ URL and name prefix, for the distributed roles.
    pub amqp: Option<(String, String)>,
    /// Log the per-request stage stamps (`seadragon::timeline` at debug) and keep them.
    pub timeline: bool,
}

/// A running `seadragon` process; killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// `serve`, `gateway` or `worker`.
    pub role: &'static str,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its `seadragon::timeline` lines, when the setup asked for them.
    pub timeline: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// A process started elsewhere, whose address is not known yet.
    pub fn new(child: Child, role: &'static str) -> Self {
        Self {
            child,
            role,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            timeline: Arc::default(),
        }
    }

    /// The same process, known to listen on `addr`.
    pub fn listening_on(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The process id, for `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGTERM first, so the process shuts down as in production (RabbitMQ roles close
        // their sessions and queues); SIGKILL only if it does not end in time.
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let deadline = std::time::Instant::now() + STOP_TIMEOUT;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `seadragon <role>` and waits until it prints the address it listens on.
pub async fn start(setup: &Setup, role: &'static str) -> Result<Process, BenchError> {
    let mut command = Command::new(&setup.exe);
    command
        .arg(role)
        // Only what is set here applies: a developer's own SEADRAGON_* settings must not leak in.
        .env_clear()
        // Warnings only, plus the one line that says where it listens; not the per-request
        // failure lines, which readiness polls (503 until a worker announces itself) set off.
        .env(
            "RUST_LOG",
            if setup.timeline {
                "warn,seadragon::app=info,tower_http=off,seadragon::timeline=debug"
            } else {
                "warn,seadragon::app=info,tower_http=off"
            },
        )
        .env("SEADRAGON_LISTEN", "127.0.0.1:0")
        .env(
            "SEADRAGON_DATABASE_URL",
            format!("sqlite://{}", setup.dir.join(&setup.db).display()),
        )
        .env("SEADRAGON_ADMIN_KEY", &setup.admin_key)
        .env("SEADRAGON_OLLAMA_URL", &setup.ollama_url)
        .env("SEADRAGON_SLOTS", setup.slots.to_string())
        .env("SEADRAGON_CONFIG", setup.dir.join("tiers.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((url, prefix)) = &setup.amqp {
        command
            .env("SEADRAGON_AMQP_URL", url)
            .env("SEADRAGON_AMQP_PREFIX", prefix);
    }
    let mut child = command.spawn().ctx("cannot start seadragon")?;
    let stderr = child.stderr.take().ctx_none("no stderr pipe")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let timeline = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&timeline);
    // A plain thread reads the log: the address once, then warnings, so the pipe never fills.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            } else if line.contains(" seadragon::timeline: ") {
                if let Ok(mut kept) = kept.lock() {
                    kept.push(line);
                }
            } else {
                crate::report::log(&format!("[{role}] {line}"));
            }
        }
    });
    let mut process = Process::new(child, role);
    process.timeline = timeline;
    let addr = tokio::time::timeout(START_TIMEOUT, rx)
        .await
        .ctx("seadragon did not start listening in time")?
        .ctx("seadragon exited before listening")?;
    process.addr = addr.parse().ctx("seadragon printed a bad address")?;
    Ok(process)
}

/// Waits until the gateway's `/api/health` is ready (for a gateway: a worker announced itself).
pub async fn wait_ready(http: &reqwest::Client, gateway: &Process) -> Result<(), BenchError> {
    let url = format!("http://{}/api/health", gateway.addr);
    let ready = tokio::time::timeout(START_TIMEOUT, async {
        loop {
            if let Ok(r) = http.get(&url).send().await
                && let Ok(health) = r.json::<Value>().await
                && health["ollama"]["ok"] == true
                && health["queue"]["ok"] == true
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    ready.ctx(&format!("{} never became ready", gateway.role))
}

/// Creates a user key of the `bench` tier.
pub async fn user_key(
    http: &reqwest::Client,
    gateway: &Process,
    admin_key: &str,
) -> Result<String, BenchError> {
    let created: Value = http
        .post(format!("http://{}/admin/keys", gateway.addr))
        .bearer_auth(admin_key)
        .json(&json!({"name": "bench", "tier": "bench"}))
        .send()
        .await
        .ctx("cannot create a key")?
        .json()
        .await
        .ctx("cannot read the created key")?;
    created["key"]
        .as_str()
        .map(str::to_owned)
        .ctx_none(&format!("no key in {created}"))
}

/// Starts `roles` in order (the last one takes the clients: `serve`, or the gateway after its
/// worker), waits until it serves, and gives it a user key: the load's target, and the
/// processes with the front one first.
pub async fn launch(
    http: &reqwest::Client,
    setup: &Setup,
    roles: &[&'static str],
) -> Result<(crate::load::Target, Vec<Process>), BenchError> {
    let mut processes = Vec::new();
    for role in roles {
        processes.push(start(setup, role).await?);
    }
    processes.reverse();
    let front = processes.first().ctx_none("no process to start")?;
    wait_ready(http, front).await?;
    let key = user_key(http, front, &setup.admin_key).await?;
    let target = crate::load::Target {
        addr: front.addr,
        api: crate::load::Api::OpenAi(key.into()),
    };
    Ok((target, processes))
}
