//! A RabbitMQ node of the test's own: its own name, ports, data and Erlang cookie in a temporary
//! directory, so restarting it or raising its memory alarm disturbs no other broker.
//!
//! A restart stops the whole node and starts it again, as an operator's restart does. Every
//! command it runs has a deadline, so a broker that will not boot fails the test instead of
//! hanging it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long a node may take to boot or to stop.
const BOOT_LIMIT: Duration = Duration::from_secs(90);
/// How long one `rabbitmqctl` call may take.
const CTL_LIMIT: Duration = Duration::from_secs(30);

pub struct PrivateBroker {
    dir: tempfile::TempDir,
    node: String,
    amqp_port: u16,
    dist_port: u16,
    child: Option<Child>,
}

/// Debian's wrappers in `/usr/sbin` re-run the tools as the `rabbitmq` user; the scripts behind
/// them run as whoever calls them, which a private node needs.
fn tool(name: &str) -> PathBuf {
    let debian = PathBuf::from("/usr/lib/rabbitmq/bin").join(name);
    if debian.exists() {
        debian
    } else {
        PathBuf::from(name)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivateBroker {
    /// Boots a fresh node and waits until it accepts AMQP connections.
    pub async fn start() -> Self {
        let mut broker = Self {
            dir: tempfile::tempdir().unwrap(),
            node: format!(
                "seadragon-faults-{}@localhost",
                seadragon::ids::random_alphanumeric(8).to_lowercase()
            ),
            amqp_port: free_port(),
            dist_port: free_port(),
            child: None,
        };
        broker.boot().await;
        broker
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    fn command(&self, program: &str) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new(tool(program));
        command
            .current_dir(dir)
            // The Erlang cookie lives in $HOME; the node and its CLI calls share this one.
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", dir.join("plugins"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_PID_FILE", dir.join("node.pid"))
            // Makes the start script exec the Erlang VM instead of wrapping it in a shell that
            // would outlive a killed test.
            .env("RUNNING_UNDER_SYSTEMD", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts the node process and waits for the node to finish booting.
    async fn boot(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("console.log")).unwrap();
        let child = self
            .command("rabbitmq-server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server must be installed (see .ci/run)");
        self.child = Some(child);
        let booted = tokio::time::timeout(BOOT_LIMIT, async {
            loop {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("{}: exited with {status} while booting", self.describe());
                }
                if self.try_ctl(&["-q", "await_startup"]).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        assert!(booted.is_ok(), "{}: did not boot", self.describe());
    }

    /// Stops the node gracefully (SIGTERM), as a service manager does.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().unwrap().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let stopped = tokio::time::timeout(BOOT_LIMIT, child.wait()).await;
        assert!(stopped.is_ok(), "{}: did not stop", self.describe());
    }

    /// Starts the stopped node again; its durable state survived, its connections did not.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the node is still running");
        self.boot().await;
    }

    /// Runs `rabbitmqctl` against this node; true when it succeeded in time.
    async fn try_ctl(&self, args: &[&str]) -> bool {
        let run = self
            .command("rabbitmqctl")
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        matches!(
            tokio::time::timeout(CTL_LIMIT, run).await,
            Ok(Ok(status)) if status.success()
        )
    }

    /// Runs `rabbitmqctl` against this node and fails the test when it does not succeed.
    pub async fn ctl(&self, args: &[&str]) {
        assert!(
            self.try_ctl(args).await,
            "{}: rabbitmqctl {args:?} failed",
            self.describe()
        );
    }

    /// The node's name and the end of its console log, for failure messages.
    fn describe(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("RabbitMQ node {}\n{}", self.node, tail.join("\n"))
    }
}
