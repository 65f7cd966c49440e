//! Faults on a real three-node RabbitMQ cluster, seen from outside: real `seadragon` gateway
//! and worker processes, fake Ollamas, HTTP clients, and `scripts/rabbitmq-cluster.sh` to kill,
//! restart, pause or alarm the nodes. Each test checks what a client may count on whatever
//! breaks: every accepted request completes exactly once or ends with an explicit error,
//! none hangs, no prompt runs to its end twice, and new requests succeed again soon after.
//!
//! - `rabbit`: the cluster (booted once for the whole binary, torn down when it exits);
//! - `fleet`: the `seadragon` processes and their fakes;
//! - `client`, `traffic`, `tally`: requests, their outcomes, and the books;
//! - `node_faults`, `client_faults`: the fault tests;
//! - `soak`, `chaos`: the long run with faults fired along the way (ignored by default,
//!   `scripts/soak.sh` runs it).
//!
//! The tests take turns on the one cluster; each starts by bringing it back to three healthy
//! nodes, whatever the previous one left.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    missing_debug_implementations,
    dead_code
)]

mod chaos;
mod client;
mod client_faults;
mod fleet;
mod node_faults;
mod rabbit;
mod soak;
mod tally;
mod traffic;

use std::future::Future;
use std::time::Duration;

use tokio::sync::{Mutex, OnceCell};

use rabbit::RabbitCluster;

static CLUSTER: OnceCell<RabbitCluster> = OnceCell::const_new();
/// One test at a time faults the cluster.
static TURN: Mutex<()> = Mutex::const_new(());

/// Runs `test` with the cluster to itself, healed first, within `limit` (the wait for the
/// turn and the first boot not included).
pub async fn with_cluster<F, Fut>(limit: Duration, test: F)
where
    F: FnOnce(&'static RabbitCluster) -> Fut,
    Fut: Future<Output = ()>,
{
    let _turn = TURN.lock().await;
    let cluster = CLUSTER.get_or_init(RabbitCluster::up).await;
    cluster.heal().await;
    tokio::time::timeout(limit, test(cluster))
        .await
        .expect("the test did not finish in time");
}
