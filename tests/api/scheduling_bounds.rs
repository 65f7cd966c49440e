//! The scheduling rule's bounds, against both backends (the contract's pairs), with a worker
//! that holds each job for a fixed service time, like a one-slot Ollama:
//! - a free flood costs enterprise work at most about one service time per rescue ahead of it;
//! - under an enterprise flood, starving free jobs still run, at most every tenth dispatch;
//! - early shedding refuses what would wait past the tier's limit and admits a cold system;
//! - a client that stops reading is dropped and its worker stopped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seadragon::openai::Delta;
use seadragon::queue::pacing::MAX_EVENTS_BEHIND;
use seadragon::queue::{JobEvent, QueueError, QueuePolicy, WorkQueue};
use tokio::task::JoinHandle;

use crate::queue_contract::{Backend, job, pair_with, policy, take};

/// Dispatches in order: job id and when its worker got it.
type Log = Arc<Mutex<Vec<(String, Instant)>>>;

/// A one-slot worker: takes the next job, holds it for `service`, finishes it.
fn one_slot(work: &Arc<dyn WorkQueue>, service: Duration) -> (Log, JoinHandle<()>) {
    let log: Log = Arc::default();
    let (work, record) = (Arc::clone(work), Arc::clone(&log));
    let task = tokio::spawn(async move {
        loop {
            let assignment = take(&work).await;
            let id = assignment.job().id.clone();
            record.lock().unwrap().push((id, Instant::now()));
            tokio::time::sleep(service).await;
            assignment.finish().await;
        }
    });
    (log, task)
}

fn ran_once(log: &[(String, Instant)], backend: Backend) {
    let mut ids: Vec<&str> = log.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "{backend:?}: a job ran twice");
}

async fn wait_for(log: &Log, done: impl Fn(&[(String, Instant)]) -> bool) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !done(&log.lock().unwrap()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the worker never got there");
}

async fn a_free_flood_costs_enterprise_at_most_a_rescue_per_wait(backend: Backend) {
    let p = pair_with(backend, policy(Duration::from_millis(200))).await;
    let service = Duration::from_millis(20);
    let mut held = Vec::new();
    for i in 0..80 {
        held.push(
            p.jobs
                .submit(job(&format!("f{i}"), "batch", 1))
                .await
                .unwrap(),
        );
    }
    let (log, worker) = one_slot(&p.work, service);
    // Enterprise asks for a quarter of the capacity, for two seconds.
    let mut submitted = Vec::new();
    for i in 0..25 {
        let id = format!("e{i}");
        submitted.push((id.clone(), Instant::now()));
        held.push(p.jobs.submit(job(&id, "pro", 3)).await.unwrap());
        tokio::time::sleep(service * 4).await;
    }
    wait_for(&log, |l| {
        l.iter().filter(|(id, _)| id.starts_with('e')).count() == 25
    })
    .await;
    worker.abort();
    let log = log.lock().unwrap().clone();
    ran_once(&log, backend);
    for (id, at) in submitted {
        let started = log.iter().position(|(d, _)| *d == id).unwrap();
        // Free jobs that started between this job's arrival and its start: the one a worker
        // may already hold for the slot, and a rescue; never the backlog.
        let overtaken = log[..started]
            .iter()
            .filter(|(d, when)| d.starts_with('f') && *when > at)
            .count();
        assert!(
            overtaken <= 2,
            "{backend:?}: {id} waited behind {overtaken} free jobs"
        );
    }
    let rescued = p
        .jobs
        .scheduling()
        .rescues
        .get("batch")
        .copied()
        .unwrap_or(0);
    assert!(rescued >= 1, "{backend:?}: free work starved");
}

async fn an_enterprise_flood_still_runs_starving_free_jobs_at_the_rescue_share(backend: Backend) {
    let starvation = Duration::from_millis(300);
    let p = pair_with(backend, policy(starvation)).await;
    let service = Duration::from_millis(10);
    let mut held = Vec::new();
    for i in 0..200 {
        held.push(
            p.jobs
                .submit(job(&format!("e{i}"), "pro", 3))
                .await
                .unwrap(),
        );
    }
    let submitted = Instant::now();
    for i in 0..3 {
        held.push(
            p.jobs
                .submit(job(&format!("f{i}"), "free", 1))
                .await
                .unwrap(),
        );
    }
    let (log, worker) = one_slot(&p.work, service);
    wait_for(&log, |l| {
        l.iter().filter(|(id, _)| id.starts_with('f')).count() == 3
    })
    .await;
    worker.abort();
    let log = log.lock().unwrap().clone();
    ran_once(&log, backend);
    let free: Vec<usize> = (0..log.len())
        .filter(|&i| log[i].0.starts_with('f'))
        .collect();
    assert!(
        free[2] < 100,
        "{backend:?}: free ran only after the flood: {free:?}"
    );
    // Over RabbitMQ a rescue copy is found by the worker through the bell rung after its
    // publish; a slot that pulls before the bell arrives takes one more job first, so the
    // copy can start one dispatch later than it was decided, and the next one on time.
    let lag = usize::from(matches!(backend, Backend::Rabbit));
    for pair in free.windows(2) {
        assert!(
            pair[1] - pair[0] >= 10 - lag,
            "{backend:?}: rescues above their share: {free:?}"
        );
    }
    // starvation + (rescues ahead + 1) / (share × throughput), with a second of slack for a
    // loaded machine.
    let elapsed = log.last().unwrap().1 - log[0].1;
    let per_job = elapsed.as_secs_f64() / (log.len() - 1) as f64;
    for (ahead, &i) in free.iter().enumerate() {
        let waited = (log[i].1 - submitted).as_secs_f64();
        let bound = starvation.as_secs_f64() + (ahead + 1) as f64 * 10.0 * per_job + 1.0;
        assert!(
            waited <= bound,
            "{backend:?}: f{ahead} waited {waited:.2} s > {bound:.2} s"
        );
    }
}

async fn a_job_predicted_to_wait_past_its_limit_is_shed_at_once(backend: Backend) {
    let p = pair_with(backend, policy(Duration::from_secs(3600))).await;
    let short = |id: String| {
        let mut j = job(&id, "pro", 2);
        j.max_wait = Duration::from_secs(1);
        j
    };
    // A cold system (nothing dispatched yet) admits however deep its queue.
    let mut held = Vec::new();
    for i in 0..60 {
        held.push(p.jobs.submit(short(format!("cold{i}"))).await.unwrap());
    }
    drop(held);
    // Thirty dispatches within a second: about thirty a second.
    for i in 0..30 {
        let _ticket = p
            .jobs
            .submit(job(&format!("w{i}"), "pro", 2))
            .await
            .unwrap();
        take(&p.work).await.finish().await;
    }
    let blocker = p.jobs.submit(job("blocker2", "pro", 3)).await.unwrap();
    let running = take(&p.work).await;
    let mut held = Vec::new();
    let refused = loop {
        match p.jobs.submit(short(format!("j{}", held.len()))).await {
            Ok(ticket) => held.push(ticket),
            Err(e) => break e,
        }
        assert!(held.len() <= 200, "{backend:?}: never shed");
    };
    assert!(
        (10..=60).contains(&held.len()),
        "{backend:?}: shed after {}",
        held.len()
    );
    assert!(
        matches!(&refused, QueueError::WouldWait { max_wait, .. } if *max_wait == Duration::from_secs(1)),
        "{backend:?}: {refused:?}"
    );
    drop((held, blocker, running));
}

async fn a_client_that_stops_reading_is_dropped_and_its_worker_stopped(backend: Backend) {
    let p = pair_with(
        backend,
        QueuePolicy {
            slow_client: Duration::from_millis(500),
            ..policy(Duration::from_secs(3600))
        },
    )
    .await;
    let ticket = p.jobs.submit(job("j", "pro", 2)).await.unwrap();
    let mut a = take(&p.work).await;
    let cancelled = a.cancelled();
    let started = Instant::now();
    let delta = JobEvent::Delta(Delta {
        content: Some("token".into()),
        ..Delta::default()
    });
    // The ticket is never read. Over RabbitMQ the worker's sends succeed (they go to the
    // broker) until the gateway drops the client and cancels the job.
    // Past a full buffer, one event every 20 ms: slow enough that the client is dropped for
    // stalling, not for falling a second buffer behind.
    let mut sent = 0;
    while !cancelled.is_cancelled() {
        if a.send(delta.clone()).await.is_err() {
            break;
        }
        sent += 1;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{backend:?}: never dropped"
        );
        if sent > MAX_EVENTS_BEHIND + 8 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(10), cancelled.cancelled())
        .await
        .unwrap_or_else(|_| panic!("{backend:?}: the worker was not stopped"));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{backend:?}: dropped too soon"
    );
    a.finish().await;
    drop(ticket);
}

macro_rules! bounds {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::$case(super::Backend::Embedded).await; })*
        }
        mod rabbitmq {
            $(#[tokio::test] async fn $case() { super::$case(super::Backend::Rabbit).await; })*
        }
    };
}

bounds!(
    a_free_flood_costs_enterprise_at_most_a_rescue_per_wait,
    an_enterprise_flood_still_runs_starving_free_jobs_at_the_rescue_share,
    a_job_predicted_to_wait_past_its_limit_is_shed_at_once,
    a_client_that_stops_reading_is_dropped_and_its_worker_stopped,
);
