//! The soak: thousands of streamed jobs through two gateways and three workers (two slots
//! each) while workers, a gateway and broker nodes are killed and restarted (see `chaos`).
//! Clients retry refusals at admission, as a well-behaved client does; an accepted request
//! that fails counts as failed. It passes with nothing lost, hung, run twice or garbled, and
//! every request accepted in the end. `scripts/soak.sh` runs it and prints the totals.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::chaos::{self, Gateways};
use crate::client::{self, Ask, Limits, Outcome};
use crate::fleet::{Fleet, FleetSpec, TIERS};
use crate::tally::{Record, judge};
use crate::with_cluster;

/// Requests sent at once.
const CLIENTS: usize = 12;
/// A request refused at admission for this long in a row is given up.
const GIVE_UP: Duration = Duration::from_secs(300);

#[allow(clippy::disallowed_methods)]
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of several minutes: run it with scripts/soak.sh"]
async fn soak_with_killed_workers_gateway_and_nodes_loses_and_repeats_nothing() {
    #[allow(clippy::cast_possible_truncation)]
    let jobs = setting("SEADRAGON_SOAK_JOBS", 2000) as usize;
    let seed = setting("SEADRAGON_SOAK_SEED", rand::rng().random());
    with_cluster(Duration::from_secs(3600), |cluster| async move {
        eprintln!("soak: {jobs} jobs, seed {seed} (SEADRAGON_SOAK_JOBS, SEADRAGON_SOAK_SEED)");
        let spec = FleetSpec {
            slots: 2,
            token_delay: Duration::from_millis(5),
            max_wait_secs: 120,
            ..FleetSpec::default()
        };
        let mut fleet = Fleet::start(cluster, "soak", &spec).await;
        let gateways = Gateways::of(&fleet);
        let (ended, watch_ended) = watch::channel(0_usize);
        let ended = Arc::new(ended);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let load = Load {
                    http: fleet.http.clone(),
                    keys: TIERS.map(|t| fleet.key(t).to_owned()),
                    prefix: fleet.prefix.clone(),
                    gateways: Arc::clone(&gateways),
                    next: Arc::clone(&next),
                    ended: Arc::clone(&ended),
                    jobs,
                };
                tokio::spawn(load.run(seed.wrapping_add(c as u64)))
            })
            .collect();
        let progress = tokio::spawn(report_progress(watch_ended.clone(), jobs));
        let mut rng = StdRng::seed_from_u64(seed);
        let plan = chaos::plan(&mut rng);
        let planned = plan.len();
        let faults = chaos::run(
            plan,
            &mut fleet,
            cluster,
            &gateways,
            watch_ended,
            jobs,
            &mut rng,
        )
        .await;
        let mut records = Vec::new();
        for client in clients {
            records.extend(client.await.unwrap());
        }
        progress.abort();
        let took = started.elapsed();
        let never_accepted = records.iter().filter(|r| !r.outcome.accepted()).count();
        eprintln!("soak: {jobs} jobs in {took:.0?}, seed {seed}; faults:");
        for fault in &faults {
            eprintln!("  {fault}");
        }
        eprintln!("  never accepted (gave up after {GIVE_UP:?} of refusals): {never_accepted}");
        judge("soak", &records, &fleet.runs(), &fleet.logs);
        assert_eq!(never_accepted, 0, "every request is accepted in the end");
        assert_eq!(faults.len(), planned, "every fault of the plan fired");
    })
    .await;
}

/// One client: takes job numbers until `jobs` are taken, sends each (retrying refusals) and
/// keeps its records.
struct Load {
    http: reqwest::Client,
    keys: [String; 3],
    prefix: String,
    gateways: Arc<Gateways>,
    next: Arc<AtomicUsize>,
    ended: Arc<watch::Sender<usize>>,
    jobs: usize,
}

impl Load {
    async fn run(self, seed: u64) -> Vec<Record> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut records = Vec::new();
        loop {
            let job = self.next.fetch_add(1, Ordering::Relaxed);
            if job >= self.jobs {
                return records;
            }
            let tokens = rng.random_range(10..=150);
            let key = &self.keys[rng.random_range(0..3)];
            records.push(self.one(job, tokens, key, &mut rng).await);
            self.ended.send_modify(|n| *n += 1);
        }
    }

    /// Sends job `job` until it is accepted (each attempt with a prompt of its own) or refused
    /// for [`GIVE_UP`].
    async fn one(&self, job: usize, tokens: usize, key: &str, rng: &mut StdRng) -> Record {
        let limits = Limits {
            admission: Duration::from_secs(20),
            total: Duration::from_secs(180),
        };
        let first = Instant::now();
        let mut earlier = Vec::new();
        let mut refusals = Vec::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some((g, endpoint)) = self.gateways.pick(job + attempt) else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let ask = Ask::new(&format!("{}-j{job}-a{attempt}", self.prefix), tokens);
            let outcome = client::send(&self.http, &endpoint.base, key, &ask, limits, || {}).await;
            if let Outcome::Refused { status, .. } = outcome
                && first.elapsed() < GIVE_UP
            {
                refusals.push(status);
                earlier.push(ask.prompt);
                // Retry soon, with jitter so refused clients do not come back in step.
                let pause = rng.random_range(100..1000);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                continue;
            }
            let mut record =
                Record::new(format!("job {job} via gateway-{g}"), &ask.prompt, outcome);
            record.refusals = refusals;
            record.earlier_prompts = earlier;
            record.gateway_died = self.gateways.incarnation(g) != endpoint.incarnation;
            return record;
        }
    }
}

/// A line every 15 s, so a person watching sees the soak move (or stall).
async fn report_progress(ended: watch::Receiver<usize>, jobs: usize) {
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(15)).await;
        eprintln!(
            "soak: {:>5} of {jobs} jobs ended after {:.0?}",
            *ended.borrow(),
            start.elapsed()
        );
    }
}
