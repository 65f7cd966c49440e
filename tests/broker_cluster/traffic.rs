//! Client load for the fault tests: requests sent in the background and gathered into
//! [`Record`]s, the usual setup (every slot busy with a long stream, short jobs queued behind
//! them), and the recovery check (every gateway serves a new request within a bound).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{self, Ask, Limits, Outcome};
use crate::fleet::{Fleet, TIERS};
use crate::tally::Record;

/// After a fault heals, or while it lasts if the design allows, every gateway must serve a new
/// request within this.
pub const RECOVERY: Duration = Duration::from_secs(30);

/// Requests running in the background.
#[derive(Debug)]
pub struct Traffic {
    running: Vec<(String, String, JoinHandle<Outcome>)>,
    accepted: watch::Sender<usize>,
    next: usize,
}

impl Traffic {
    pub fn new() -> Self {
        Self {
            running: Vec::new(),
            accepted: watch::Sender::new(0),
            next: 0,
        }
    }

    /// Sends a `tokens`-token streamed chat through gateway `gateway` in the background,
    /// labelled `label`; returns its prompt.
    pub fn send(&mut self, fleet: &Fleet, gateway: usize, label: &str, tokens: usize) -> String {
        self.spawn(fleet, gateway, label, tokens, None)
    }

    /// Sends a request and waits only for its admission: its record if it ended without
    /// being accepted (or ended before the acceptance was seen), `None` once it is accepted;
    /// it then runs on in the background like the others.
    pub async fn probe(&mut self, fleet: &Fleet, gateway: usize, label: &str) -> Option<Record> {
        let (accepted, on_accept) = tokio::sync::oneshot::channel();
        self.spawn(fleet, gateway, label, 5, Some(accepted));
        let (label, prompt, mut handle) = self.running.pop().unwrap();
        tokio::select! {
            outcome = &mut handle => Some(Record::new(label, &prompt, outcome.unwrap())),
            _ = on_accept => {
                self.running.push((label, prompt, handle));
                None
            }
        }
    }

    fn spawn(
        &mut self,
        fleet: &Fleet,
        gateway: usize,
        label: &str,
        tokens: usize,
        on_accept: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> String {
        self.next += 1;
        let label = format!("{label}-{}", self.next);
        let ask = Ask::new(&format!("{}-{label}", fleet.prefix), tokens);
        let (http, base) = (fleet.http.clone(), fleet.gateways[gateway].base.clone());
        let key = fleet.key(TIERS[self.next % TIERS.len()]).to_owned();
        let accepted = self.accepted.clone();
        let prompt = ask.prompt.clone();
        let handle = tokio::spawn(async move {
            client::send(&http, &base, &key, &ask, Limits::default(), || {
                accepted.send_modify(|n| *n += 1);
                if let Some(on_accept) = on_accept {
                    let _ = on_accept.send(());
                }
            })
            .await
        });
        self.running.push((label, prompt.clone(), handle));
        prompt
    }

    /// Waits (bounded) until `n` requests in all have been accepted.
    pub async fn wait_accepted(&self, n: usize) {
        let mut accepted = self.accepted.subscribe();
        let reached = tokio::time::timeout(Duration::from_secs(30), accepted.wait_for(|a| *a >= n));
        assert!(
            matches!(reached.await, Ok(Ok(_))),
            "only {} of {n} requests were accepted",
            *self.accepted.borrow()
        );
    }

    /// Waits for every request to end (each is bounded by its own [`Limits`]).
    pub async fn finish(self) -> Vec<Record> {
        let mut records = Vec::new();
        for (label, prompt, handle) in self.running {
            records.push(Record::new(label, &prompt, handle.await.unwrap()));
        }
        records
    }
}

/// Fills every worker slot with a stream of `long` tokens, then queues `queued` short jobs
/// behind them, alternating gateways; returns once all are accepted and the streams run.
/// Returns the prompts of the queued jobs.
pub async fn busy_and_queued(
    fleet: &Fleet,
    traffic: &mut Traffic,
    long: usize,
    queued: usize,
) -> Vec<String> {
    let slots = fleet.fakes.len() * fleet.slots();
    let before = fleet.started();
    for i in 0..slots {
        traffic.send(fleet, i % fleet.gateways.len(), "stream", long);
    }
    let started = tokio::time::timeout(Duration::from_secs(30), async {
        while fleet.started() < before + slots {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(
        started.await.is_ok(),
        "the long streams did not all start; logs in {}",
        fleet.logs.display()
    );
    let accepted_before = *traffic.accepted.borrow();
    let prompts = (0..queued)
        .map(|i| traffic.send(fleet, i % fleet.gateways.len(), "queued", 20))
        .collect();
    traffic.wait_accepted(accepted_before + queued).await;
    prompts
}

/// Checks that the fleet serves again within [`RECOVERY`]: every gateway completes a new
/// request (refusals are retried), and every running worker takes a job, so a worker that
/// cannot pull is caught even while the others carry the load. Returns the gateways' attempts
/// for the books; the jobs sent to reach the workers join `traffic`.
pub async fn recovers(fleet: &Fleet, traffic: &mut Traffic, what: &str) -> Vec<Record> {
    let started: Vec<usize> = fleet.fakes.iter().map(|f| f.started().len()).collect();
    let records = gateways_serve(fleet, what).await;
    let deadline = Instant::now() + RECOVERY;
    let slots = fleet.fakes.len() * fleet.slots();
    for round in 0.. {
        let idle: Vec<usize> = (0..fleet.workers.len())
            .filter(|&w| fleet.workers[w].is_running())
            .filter(|&w| fleet.fakes[w].started().len() == started[w])
            .collect();
        if idle.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker(s) {idle:?} took no job within {RECOVERY:?} after {what}; logs in {}",
            fleet.logs.display()
        );
        // Twice as many half-second jobs as there are slots: a worker that pulls gets one.
        if round % 10 == 0 {
            for i in 0..2 * slots {
                traffic.send(fleet, i % fleet.gateways.len(), "spread", 50);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    records
}

/// Every gateway completes a new request within [`RECOVERY`], refusals retried.
async fn gateways_serve(fleet: &Fleet, what: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for (g, gateway) in fleet.gateways.iter().enumerate() {
        let deadline = Instant::now() + RECOVERY;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let label = format!("after {what}: gateway-{g} attempt {attempt}");
            let id = format!("{}-recover-{what}-{g}-{attempt}", fleet.prefix);
            let ask = Ask::new(&id.replace(' ', "-"), 5);
            let limits = Limits {
                admission: Duration::from_secs(10),
                total: Duration::from_secs(30),
            };
            let key = fleet.key(TIERS[2]);
            let outcome = client::send(&fleet.http, &gateway.base, key, &ask, limits, || {}).await;
            let done = outcome == Outcome::Completed;
            records.push(Record::new(label, &ask.prompt, outcome.clone()));
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gateway-{g} did not serve a request within {RECOVERY:?} after {what}; \
                 last outcome {outcome:?}; logs in {}",
                fleet.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    records
}
