//! The three-node RabbitMQ cluster of this test binary, driven through
//! `scripts/rabbitmq-cluster.sh` so the tests and a person at a shell fault it the same way.
//!
//! One cluster serves every test of the binary (booting one takes 15–30 s on two cores). It is
//! tied to this process by a guard: a second instance of the script that reads a pipe from us
//! and tears the cluster down when the pipe closes, which happens however the process ends,
//! `kill -9` included. The guard also kills the `seadragon` processes registered with
//! [`RabbitCluster::own`], which would otherwise outlive a killed test run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rabbitmq-cluster.sh");
/// Booting the cluster, or one node; the script bounds each of its own waits as well.
const BOOT_LIMIT: Duration = Duration::from_secs(180);
/// One `rabbitmqctl` call.
const CTL_LIMIT: Duration = Duration::from_secs(70);

#[derive(Debug)]
pub struct RabbitCluster {
    dir: PathBuf,
    urls: [String; 3],
    /// Never read: holding its standard input open keeps the cluster up.
    _guard: std::process::Child,
}

/// Where a queue lives: its name and the number (1–3) of the node leading it (quorum) or
/// holding it (classic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub queue: String,
    pub kind: String,
    pub node: usize,
}

impl RabbitCluster {
    /// Boots three nodes, joins them and starts the guard.
    pub async fn up() -> Self {
        let output = tokio::time::timeout(BOOT_LIMIT, script().arg("up").output())
            .await
            .expect("the cluster did not boot in time")
            .expect("scripts/rabbitmq-cluster.sh must be runnable (bash, python3, RabbitMQ)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the cluster did not boot:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("`up` printed no {name}: {stdout}"))
                .to_owned()
        };
        let dir = PathBuf::from(value("SEADRAGON_CLUSTER_DIR="));
        let urls: Vec<String> = value("SEADRAGON_CLUSTER_URLS=")
            .split(',')
            .map(str::to_owned)
            .collect();
        let guard = std::process::Command::new(SCRIPT)
            .arg("guard")
            .env("SEADRAGON_CLUSTER_DIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster's guard");
        eprintln!("RabbitMQ cluster in {}: {}", dir.display(), urls.join(","));
        Self {
            dir,
            urls: urls.try_into().expect("three URLs"),
            _guard: guard,
        }
    }

    /// The AMQP URL of node `n` (1–3).
    pub fn url(&self, n: usize) -> &str {
        &self.urls[n - 1]
    }

    /// All three URLs, comma-separated, in the `k`-th of the six orders: each process gets the
    /// nodes in another order, so they spread over the cluster and fail over differently.
    pub fn urls_in_order(&self, k: usize) -> String {
        const ORDERS: [[usize; 3]; 6] = [
            [0, 1, 2],
            [1, 2, 0],
            [2, 0, 1],
            [0, 2, 1],
            [2, 1, 0],
            [1, 0, 2],
        ];
        ORDERS[k % 6]
            .iter()
            .map(|&i| self.urls[i].as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registers a process the guard kills when this test process dies without cleaning up.
    pub fn own(&self, pid: u32) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("owned.pids"))
            .unwrap();
        writeln!(file, "{pid}").unwrap();
    }

    /// `kill -9` of node `n`'s Erlang VM.
    pub async fn kill(&self, n: usize) {
        self.run(CTL_LIMIT, &["kill", &n.to_string()]).await;
    }

    /// Boots node `n` again and waits until it serves.
    pub async fn start(&self, n: usize) {
        self.run(BOOT_LIMIT, &["start", &n.to_string()]).await;
    }

    /// Graceful stop of node `n`'s VM.
    pub async fn stop(&self, n: usize) {
        self.run(CTL_LIMIT, &["stop", &n.to_string()]).await;
    }

    /// `rabbitmqctl` against node `n`; its standard output. Fails the test if it fails.
    pub async fn ctl(&self, n: usize, args: &[&str]) -> String {
        let mut all = vec!["ctl".to_owned(), n.to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        self.run(CTL_LIMIT, &all).await
    }

    /// Raises (`true`) or clears the memory alarm of node `n`.
    pub async fn memory_alarm(&self, n: usize, raised: bool) {
        let watermark = if raised { "0.0000001" } else { "0.4" };
        self.ctl(n, &["-q", "set_vm_memory_high_watermark", watermark])
            .await;
    }

    /// Closes every client connection on every node, as an operator would before maintenance.
    pub async fn close_all_connections(&self) {
        for n in self.running().await {
            self.ctl(
                n,
                &["-q", "close_all_connections", "--global", "fault test"],
            )
            .await;
        }
    }

    /// The nodes whose AMQP port accepts connections (a node paused by `pause_minority` or
    /// with its app stopped does not).
    pub async fn running(&self) -> Vec<usize> {
        self.run(CTL_LIMIT, &["running"])
            .await
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    }

    async fn alive(&self, n: usize) -> bool {
        self.try_run(CTL_LIMIT, &["alive", &n.to_string()])
            .await
            .is_some()
    }

    /// Every queue whose name contains `pattern`, with the node leading (quorum) or holding
    /// (classic) it, as a serving node reports them.
    pub async fn placements(&self, pattern: &str) -> Vec<Placement> {
        let Some(n) = self.running().await.first().copied() else {
            return Vec::new();
        };
        let listing = self
            .ctl(n, &["-s", "list_queues", "name", "type", "leader", "pid"])
            .await;
        listing
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let [queue, kind, leader, pid] = fields[..] else {
                    return None;
                };
                // A quorum queue names its leader node; a classic queue's pid is <node.a.b.c>.
                let node = if kind == "quorum" { leader } else { pid };
                let node = node.trim_start_matches('<').split('@').next()?;
                let number = node.rsplit('-').next()?.parse().ok()?;
                queue.contains(pattern).then(|| Placement {
                    queue: queue.to_owned(),
                    kind: kind.to_owned(),
                    node: number,
                })
            })
            .collect()
    }

    /// The node leading most of the job queues under `prefix` (quorum), or holding them
    /// (classic).
    pub async fn job_queue_leader(&self, prefix: &str) -> usize {
        let placements = self.placements(&format!("{prefix}.jobs")).await;
        let mut led: BTreeMap<usize, usize> = BTreeMap::new();
        for placement in &placements {
            *led.entry(placement.node).or_default() += 1;
        }
        eprintln!("job queues: {placements:?}");
        let leader = led.iter().max_by_key(|(_, n)| **n).map(|(node, _)| *node);
        leader.unwrap_or_else(|| panic!("no job queue under {prefix} on the cluster"))
    }

    /// Brings the cluster back to three serving nodes without alarms, whatever the last test
    /// left: dead nodes are booted, stopped apps started, watermarks reset.
    pub async fn heal(&self) {
        let mut boots = Vec::new();
        for n in 1..=3 {
            if !self.alive(n).await {
                boots.push(self.start(n));
            }
        }
        futures_util::future::join_all(boots).await;
        let healed = tokio::time::timeout(BOOT_LIMIT, async {
            let mut round = 0_u32;
            while self.running().await.len() < 3 {
                round += 1;
                // A node whose app was stopped stays so; a paused one resumes by itself.
                if round.is_multiple_of(20) {
                    for n in 1..=3 {
                        let _ = self
                            .try_run(CTL_LIMIT, &["start_app", &n.to_string()])
                            .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
        .await;
        assert!(healed.is_ok(), "the cluster did not come back to 3 nodes");
        for n in 1..=3 {
            self.memory_alarm(n, false).await;
        }
    }

    async fn run(&self, limit: Duration, args: &[&str]) -> String {
        self.try_run(limit, args)
            .await
            .unwrap_or_else(|| panic!("scripts/rabbitmq-cluster.sh {args:?} failed"))
    }

    /// Runs the script with `args`; its standard output if it succeeded in time.
    async fn try_run(&self, limit: Duration, args: &[&str]) -> Option<String> {
        let run = script()
            .args(args)
            .env("SEADRAGON_CLUSTER_DIR", &self.dir)
            .stderr(Stdio::inherit())
            .output();
        match tokio::time::timeout(limit, run).await {
            Ok(Ok(output)) if output.status.success() => {
                Some(String::from_utf8_lossy(&output.stdout).into_owned())
            }
            _ => None,
        }
    }
}

fn script() -> Command {
    let mut command = Command::new(SCRIPT);
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}
