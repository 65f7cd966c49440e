//! One contract, two backends: the same queue cases run against the embedded queue and a real
//! RabbitMQ. The RabbitMQ run needs a broker (`SEADRAGON_TEST_AMQP_URL`, default the local
//! `guest` account); it fails rather than skips when there is none.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use seadragon::openai::Delta;
use seadragon::queue::embedded::EmbeddedQueue;
use seadragon::queue::rabbitmq::{RabbitGateway, RabbitWorker};
use seadragon::queue::{
    Assignment, Job, JobEvent, JobQueue, QueueError, QueuePolicy, TierRule, WorkQueue,
    WorkerAnnouncement,
};

use crate::cluster::{Namespace, amqp_url, rabbit_config};

/// A gateway side and a worker side of one backend.
pub struct Pair {
    pub jobs: Arc<dyn JobQueue>,
    pub work: Arc<dyn WorkQueue>,
    _rabbit: Option<RabbitPair>,
}

/// The RabbitMQ side's own handles: closed at the end of the test, before its names go.
struct RabbitPair {
    gateway: Arc<RabbitGateway>,
    worker: Arc<RabbitWorker>,
    _namespace: Namespace,
}

impl Drop for RabbitPair {
    fn drop(&mut self) {
        self.gateway.close();
        self.worker.close();
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Embedded,
    Rabbit,
}

pub async fn wait_connected(what: &str, connected: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(15), async {
        while !connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} never connected to RabbitMQ at {}", amqp_url()));
}

/// The contract's policy: `free` holds at most three queued jobs, every tier starves after
/// `starvation`, rescues take a tenth of the dispatches.
pub fn policy(starvation: Duration) -> QueuePolicy {
    let free = TierRule {
        priority: 1,
        starvation,
        max_queued: Some(3),
    };
    QueuePolicy {
        tiers: HashMap::from([("free".to_owned(), free)]),
        default_starvation: starvation,
        ..QueuePolicy::default()
    }
}

async fn pair(backend: Backend, starvation: Duration) -> Pair {
    pair_with(backend, policy(starvation)).await
}

pub async fn pair_with(backend: Backend, policy: QueuePolicy) -> Pair {
    match backend {
        Backend::Embedded => {
            let q = EmbeddedQueue::new(policy);
            Pair {
                jobs: Arc::new(q.clone()),
                work: Arc::new(q),
                _rabbit: None,
            }
        }
        Backend::Rabbit => {
            let namespace = Namespace::new(amqp_url());
            let prefix = &namespace.prefix;
            let gateway = Arc::new(RabbitGateway::start(rabbit_config(prefix, "gw"), policy));
            let worker = Arc::new(RabbitWorker::start(rabbit_config(prefix, "wk"), 1));
            wait_connected("gateway", || gateway.status().connected).await;
            wait_connected("worker", || worker.status().connected).await;
            // Workers take the jobs of the models their Ollama has: here the contract's "m".
            worker
                .announce(&WorkerAnnouncement {
                    worker: "wk".into(),
                    slots: 1,
                    models: vec![serde_json::json!({"name": "m"})],
                    ollama_ok: true,
                    loaded: Vec::new(),
                })
                .await;
            Pair {
                jobs: Arc::clone(&gateway) as Arc<dyn JobQueue>,
                work: Arc::clone(&worker) as Arc<dyn WorkQueue>,
                _rabbit: Some(RabbitPair {
                    gateway,
                    worker,
                    _namespace: namespace,
                }),
            }
        }
    }
}

pub fn job(id: &str, tier: &str, level: u8) -> Job {
    Job {
        id: id.into(),
        tier: tier.into(),
        base_level: level,
        key_id: "key".into(),
        model: "m".into(),
        kind: seadragon::queue::JobKind::Chat,
        body: serde_json::value::to_raw_value(&serde_json::json!({"prompt": id}))
            .unwrap()
            .into(),
        max_wait: Duration::from_secs(60),
        enqueued_at_ms: 0,
    }
}

/// Takes deliveries until one is granted (copies of granted jobs are denied) and returns it.
pub async fn take(work: &Arc<dyn WorkQueue>) -> Box<dyn Assignment> {
    take_within(work, Duration::from_secs(10)).await
}

/// [`take`], waiting up to `limit`.
pub async fn take_within(work: &Arc<dyn WorkQueue>, limit: Duration) -> Box<dyn Assignment> {
    tokio::time::timeout(limit, async {
        loop {
            let delivery = work.next().await.unwrap();
            if let Some(granted) = delivery.claim("test-worker", 3).await.granted() {
                return granted;
            }
        }
    })
    .await
    .expect("no job could be claimed")
}

async fn priority_then_arrival(backend: Backend) {
    let p = pair(backend, Duration::from_secs(3600)).await;
    let _blocker = p.jobs.submit(job("blocker", "pro", 2)).await.unwrap();
    let running = take(&p.work).await;
    let mut tickets = Vec::new();
    for (id, level) in [("f1", 1), ("p1", 2), ("e1", 3), ("p2", 2), ("f2", 1)] {
        tickets.push(p.jobs.submit(job(id, "pro", level)).await.unwrap());
    }
    running.finish().await;
    let mut order = Vec::new();
    for _ in 0..5 {
        let a = take(&p.work).await;
        order.push(a.job().id.clone());
        a.finish().await;
    }
    assert_eq!(order, ["e1", "p1", "p2", "f1", "f2"], "{backend:?}");
}

/// Waits until the backend has rescued `n` jobs of `tier`, where it decides before the
/// dispatch (a RabbitMQ gateway publishes a rescue copy); the embedded queue decides at the
/// dispatch itself.
pub async fn wait_rescued(backend: Backend, jobs: &Arc<dyn JobQueue>, tier: &str, n: u64) {
    if matches!(backend, Backend::Embedded) {
        return;
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while jobs.scheduling().rescues.get(tier).copied().unwrap_or(0) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{backend:?}: no rescue of a {tier} job"));
}

async fn a_starving_job_is_rescued_above_fresh_top_tier_work(backend: Backend) {
    let starvation = Duration::from_millis(250);
    let p = pair(backend, starvation).await;
    let _blocker = p.jobs.submit(job("blocker", "pro", 3)).await.unwrap();
    let running = take(&p.work).await;
    let _old = p.jobs.submit(job("old", "free", 1)).await.unwrap();
    tokio::time::sleep(starvation + Duration::from_millis(100)).await;
    let _e1 = p.jobs.submit(job("e1", "pro", 3)).await.unwrap();
    let _e2 = p.jobs.submit(job("e2", "pro", 3)).await.unwrap();
    assert_eq!(p.jobs.snapshot().tiers[0].starving, 1, "{backend:?}");
    wait_rescued(backend, &p.jobs, "free", 1).await;
    running.finish().await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let a = take(&p.work).await;
        order.push(a.job().id.clone());
        a.finish().await;
    }
    assert_eq!(order, ["old", "e1", "e2"], "{backend:?}");
}

async fn a_job_that_has_not_starved_never_overtakes_a_higher_level(backend: Backend) {
    let p = pair(backend, Duration::from_secs(3600)).await;
    let _blocker = p.jobs.submit(job("blocker", "pro", 3)).await.unwrap();
    let running = take(&p.work).await;
    let _old = p.jobs.submit(job("old", "free", 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _e1 = p.jobs.submit(job("e1", "pro", 3)).await.unwrap();
    running.finish().await;
    let first = take(&p.work).await;
    assert_eq!(first.job().id, "e1", "{backend:?}");
    assert!(p.jobs.scheduling().rescues.is_empty(), "{backend:?}");
}

async fn events_arrive_in_order_and_complete_the_ticket(backend: Backend) {
    let p = pair(backend, Duration::from_secs(3600)).await;
    let mut ticket = p.jobs.submit(job("j", "pro", 2)).await.unwrap();
    let mut a = take(&p.work).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        sent.push(JobEvent::Delta(Delta {
            first: i == 0,
            content: Some(format!("t{i}")),
            ..Delta::default()
        }));
    }
    sent.push(JobEvent::Finished {
        finish_reason: "stop".into(),
        usage: seadragon::openai::Usage::new(1, 20),
    });
    for event in &sent {
        a.send(event.clone()).await.unwrap();
    }
    a.finish().await;
    let mut received = Vec::new();
    while let Some(e) = ticket.next_event().await {
        let last = matches!(e, JobEvent::Finished { .. });
        received.push(e);
        if last {
            break;
        }
    }
    // The granted claim reported the start, with the claiming worker's name and slots.
    let started = JobEvent::Started {
        worker: "test-worker".into(),
        slots: 3,
    };
    sent.insert(0, started);
    assert_eq!(received, sent, "{backend:?}");
}

async fn a_job_whose_client_left_is_never_granted(backend: Backend) {
    let p = pair(backend, Duration::from_secs(3600)).await;
    let _blocker = p.jobs.submit(job("blocker", "pro", 3)).await.unwrap();
    let running = take(&p.work).await;
    let gone = p.jobs.submit(job("gone", "pro", 2)).await.unwrap();
    let _kept = p.jobs.submit(job("kept", "pro", 1)).await.unwrap();
    drop(gone);
    running.finish().await;
    let next = take(&p.work).await;
    assert_eq!(next.job().id, "kept", "{backend:?}");
}

async fn a_running_job_is_cancelled_when_its_client_leaves(backend: Backend) {
    let p = pair(backend, Duration::from_secs(3600)).await;
    let ticket = p.jobs.submit(job("j", "pro", 2)).await.unwrap();
    let a = take(&p.work).await;
    let cancelled = a.cancelled();
    drop(ticket);
    tokio::time::timeout(Duration::from_secs(5), cancelled.cancelled())
        .await
        .unwrap_or_else(|_| panic!("{backend:?}: the worker was not told"));
    a.finish().await;
}

async fn clear_and_expiry_fail_queued_jobs_with_503(backend: Backend) {
    let p = pair(backend, Duration::from_secs(3600)).await;
    let _blocker = p.jobs.submit(job("blocker", "pro", 3)).await.unwrap();
    let mut cleared = p.jobs.submit(job("c", "free", 1)).await.unwrap();
    let mut short = job("s", "pro", 2);
    short.max_wait = Duration::from_millis(200);
    // Queued before any dispatch: a cold system admits it; later its wait runs out.
    let mut expiring = p.jobs.submit(short).await.unwrap();
    let _running = take(&p.work).await;
    assert_eq!(p.jobs.snapshot().queued(), 2);
    assert_eq!(p.jobs.clear(Some("free")), 1);
    assert!(matches!(cleared.next_event().await, Some(JobEvent::Failed(f)) if f.status == 503));
    let expired = tokio::time::timeout(Duration::from_secs(5), expiring.next_event()).await;
    assert!(
        matches!(expired, Ok(Some(JobEvent::Failed(f))) if f.status == 503),
        "{backend:?}"
    );
    assert_eq!(p.jobs.snapshot().queued(), 0);
}

async fn a_full_tier_refuses_admission(backend: Backend) {
    let p = pair(backend, Duration::from_secs(3600)).await;
    let _blocker = p.jobs.submit(job("blocker", "pro", 3)).await.unwrap();
    let _running = take(&p.work).await;
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(
            p.jobs
                .submit(job(&format!("f{i}"), "free", 1))
                .await
                .unwrap(),
        );
    }
    let refused = p.jobs.submit(job("f3", "free", 1)).await.unwrap_err();
    assert!(
        matches!(refused, QueueError::TierFull { max_queued: 3, .. }),
        "{backend:?}"
    );
    assert!(p.jobs.submit(job("p", "pro", 2)).await.is_ok());
}

async fn a_large_body_and_many_events_arrive_intact(backend: Backend) {
    let p = pair(backend, Duration::from_secs(3600)).await;
    // Far larger than one AMQP frame: an image-sized prompt and an answer in many events.
    let prompt = "sea dragon ".repeat(50_000);
    let mut big = job("big", "pro", 2);
    big.body = serde_json::value::to_raw_value(&serde_json::json!({"prompt": prompt}))
        .unwrap()
        .into();
    let sent_body = big.body.get().to_owned();
    let mut ticket = p.jobs.submit(big).await.unwrap();
    let mut a = take(&p.work).await;
    assert_eq!(a.job().body.get(), sent_body, "{backend:?}");
    let chunk = "x".repeat(40_000);
    for _ in 0..3 {
        a.send(JobEvent::Delta(Delta {
            content: Some(chunk.clone()),
            ..Delta::default()
        }))
        .await
        .unwrap();
    }
    a.send(JobEvent::Finished {
        finish_reason: "stop".into(),
        usage: seadragon::openai::Usage::new(1, 3),
    })
    .await
    .unwrap();
    a.finish().await;
    let mut content = 0;
    while let Some(e) = ticket.next_event().await {
        match e {
            JobEvent::Delta(d) => content += d.content.unwrap_or_default().len(),
            JobEvent::Finished { .. } => break,
            _ => {}
        }
    }
    assert_eq!(content, 3 * chunk.len(), "{backend:?}");
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::$case(super::Backend::Embedded).await; })*
        }
        mod rabbitmq {
            $(#[tokio::test] async fn $case() { super::$case(super::Backend::Rabbit).await; })*
        }
    };
}

contract!(
    priority_then_arrival,
    a_job_that_has_not_starved_never_overtakes_a_higher_level,
    a_starving_job_is_rescued_above_fresh_top_tier_work,
    events_arrive_in_order_and_complete_the_ticket,
    a_job_whose_client_left_is_never_granted,
    a_running_job_is_cancelled_when_its_client_leaves,
    clear_and_expiry_fail_queued_jobs_with_503,
    a_full_tier_refuses_admission,
    a_large_body_and_many_events_arrive_intact,
);
