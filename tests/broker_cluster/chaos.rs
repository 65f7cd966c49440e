//! The soak's faults: a plan of worker kills, one gateway kill and two broker restarts, each
//! fired when a share of the jobs has ended, and the gateway directory the clients pick from,
//! which tells them when the gateway they talked to was killed under them.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fleet::Fleet;
use crate::rabbit::RabbitCluster;

/// A gateway as the clients see it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub base: String,
    /// Bumped when the gateway is killed: a request sent under an older one lost its gateway.
    pub incarnation: u32,
    pub up: bool,
}

/// The gateways clients may use now.
#[derive(Debug)]
pub struct Gateways(RwLock<Vec<Endpoint>>);

impl Gateways {
    pub fn of(fleet: &Fleet) -> Arc<Self> {
        let endpoints = fleet.gateways.iter().map(|g| Endpoint {
            base: g.base.clone(),
            incarnation: 0,
            up: true,
        });
        Arc::new(Self(RwLock::new(endpoints.collect())))
    }

    /// The `n`-th gateway that is up (modulo their number), if any is.
    pub fn pick(&self, n: usize) -> Option<(usize, Endpoint)> {
        let all = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let up: Vec<usize> = (0..all.len()).filter(|&g| all[g].up).collect();
        let g = *up.get(n % up.len().max(1))?;
        Some((g, all[g].clone()))
    }

    pub fn incarnation(&self, g: usize) -> u32 {
        self.0.read().unwrap_or_else(PoisonError::into_inner)[g].incarnation
    }

    fn update(&self, g: usize, change: impl FnOnce(&mut Endpoint)) {
        change(&mut self.0.write().unwrap_or_else(PoisonError::into_inner)[g]);
    }
}

/// One fault of the plan.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// `kill -9` of a random worker, started again 0.5–3 s later.
    KillWorker,
    /// `kill -9` of a random gateway, started again 2 s later.
    KillGateway,
    /// `kill -9` of the node leading the job queues, booted again 10 s later.
    KillLeaderNode,
    /// Each node in turn stopped gracefully and booted again.
    RollingRestart,
}

/// When (share of the jobs ended) each fault fires: a worker kill every 7.5 %, the gateway at
/// 30 %, the leader's node at 45 %, the rolling restart at 70 %.
pub fn plan(rng: &mut StdRng) -> Vec<(f64, Fault)> {
    let mut plan: Vec<(f64, Fault)> = (0..12)
        .map(|k| {
            (
                0.04 + 0.075 * f64::from(k) + rng.random_range(0.0..0.03),
                Fault::KillWorker,
            )
        })
        .collect();
    plan.extend([
        (0.30, Fault::KillGateway),
        (0.45, Fault::KillLeaderNode),
        (0.70, Fault::RollingRestart),
    ]);
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    plan
}

/// Fires each fault of `plan` once `ended` reaches its share of `jobs`; returns a line per
/// fault fired, with when it started and how long it took.
pub async fn run(
    plan: Vec<(f64, Fault)>,
    fleet: &mut Fleet,
    cluster: &RabbitCluster,
    gateways: &Gateways,
    mut ended: watch::Receiver<usize>,
    jobs: usize,
    rng: &mut StdRng,
) -> Vec<String> {
    let start = Instant::now();
    let mut fired = Vec::new();
    for (share, fault) in plan {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let due = (share * jobs as f64) as usize;
        if ended.wait_for(|n| *n >= due).await.is_err() {
            break;
        }
        let at = start.elapsed();
        let what = match fault {
            Fault::KillWorker => {
                let w = rng.random_range(0..fleet.workers.len());
                let down = Duration::from_millis(rng.random_range(500..3000));
                fleet.workers[w].kill().await;
                tokio::time::sleep(down).await;
                fleet.workers[w].restart(cluster).await;
                format!("worker-{w} killed, back after {down:?}")
            }
            Fault::KillGateway => {
                let g = rng.random_range(0..fleet.gateways.len());
                gateways.update(g, |e| {
                    e.up = false;
                    e.incarnation += 1;
                });
                fleet.gateways[g].kill().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                fleet.gateways[g].restart(cluster).await;
                let base = fleet.gateways[g].base.clone();
                gateways.update(g, |e| {
                    e.base = base;
                    e.up = true;
                });
                format!("gateway-{g} killed, back after 2s")
            }
            Fault::KillLeaderNode => {
                let node = cluster.job_queue_leader(&fleet.prefix).await;
                cluster.kill(node).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
                cluster.start(node).await;
                format!("node {node} (job queues' leader) killed, booted again after 10s")
            }
            Fault::RollingRestart => {
                for node in 1..=3 {
                    cluster.stop(node).await;
                    cluster.start(node).await;
                }
                "rolling restart of nodes 1, 2, 3".to_owned()
            }
        };
        let line = format!(
            "{:>6.1}s  at {:>4} jobs ended: {what} ({:.1}s)",
            at.as_secs_f64(),
            *ended.borrow(),
            (start.elapsed() - at).as_secs_f64()
        );
        eprintln!("soak fault: {line}");
        fired.push(line);
    }
    fired
}
