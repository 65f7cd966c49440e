//! Faults the broker's clients go through: connections closed by the broker, a memory alarm
//! that blocks publishers for longer than a claim may wait, and workers killed mid-job.

use std::time::Duration;

use crate::client::Outcome;
use crate::fleet::{Fleet, FleetSpec};
use crate::tally::{Record, judge};
use crate::traffic::{Traffic, busy_and_queued, recovers};
use crate::with_cluster;

const LIMIT: Duration = Duration::from_secs(240);
/// Tokens of a stream that keeps every slot busy through the fault (10 ms each).
const LONG: usize = 600;
/// Longer than a worker waits for the answer to a claim (3 s), so claims time out under it.
const ALARM: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_every_connection_makes_every_client_reconnect_and_loses_nothing() {
    with_cluster(LIMIT, |cluster| async move {
        let fleet = Fleet::start(cluster, "connections_closed", &FleetSpec::default()).await;
        let mut traffic = Traffic::new();
        busy_and_queued(&fleet, &mut traffic, LONG, 6).await;
        cluster.close_all_connections().await;
        let mut records = recovers(&fleet, &mut traffic, "every connection was closed").await;
        fleet.wait_ready().await;
        records.extend(traffic.finish().await);
        judge(
            "close_all_connections",
            &records,
            &fleet.runs(),
            &fleet.logs,
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_alarm_refuses_or_queues_new_work_and_runs_the_queued_jobs_after_it() {
    with_cluster(LIMIT, |cluster| async move {
        let fleet = Fleet::start(cluster, "memory_alarm", &FleetSpec::default()).await;
        let mut traffic = Traffic::new();
        let queued = busy_and_queued(&fleet, &mut traffic, LONG, 6).await;
        // An alarm on one node blocks publishers on every node of the cluster.
        cluster.memory_alarm(2, true).await;
        // Meanwhile new requests are refused (503, retry-after) or queued; none may hang.
        let mut records = Vec::new();
        let alarm = tokio::time::Instant::now();
        let mut g = 0;
        while alarm.elapsed() < ALARM {
            g = (g + 1) % fleet.gateways.len();
            if let Some(record) = traffic.probe(&fleet, g, "during-alarm").await {
                check_refusal(&record);
                records.push(record);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        cluster.memory_alarm(2, false).await;
        records.extend(recovers(&fleet, &mut traffic, "the memory alarm").await);
        records.extend(traffic.finish().await);
        for record in records.iter().filter(|r| queued.contains(&r.prompt)) {
            assert_eq!(
                record.outcome,
                Outcome::Completed,
                "{} was queued before the alarm; logs in {}",
                record.label,
                fleet.logs.display()
            );
        }
        judge("memory alarm", &records, &fleet.runs(), &fleet.logs);
    })
    .await;
}

/// A request refused during a fault must say when to retry.
fn check_refusal(record: &Record) {
    if let Outcome::Refused {
        status,
        retry_after,
        ..
    } = &record.outcome
    {
        assert!(
            *status == 503 && *retry_after,
            "{}: refused without 503 and retry-after: {:?}",
            record.label,
            record.outcome
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_fails_only_its_stream_and_the_queue_runs_on() {
    with_cluster(LIMIT, |cluster| async move {
        let mut fleet = Fleet::start(cluster, "worker_killed", &FleetSpec::default()).await;
        let mut traffic = Traffic::new();
        busy_and_queued(&fleet, &mut traffic, LONG, 6).await;
        let cut = fleet.running_on(0);
        assert_eq!(cut.len(), 1, "worker-0 runs one stream");
        fleet.workers[0].kill().await;
        let mut records = recovers(&fleet, &mut traffic, "worker-0 was killed").await;
        fleet.workers[0].restart(cluster).await;
        fleet.wait_ready().await;
        records.extend(recovers(&fleet, &mut traffic, "worker-0 restarted").await);
        records.extend(traffic.finish().await);
        // Its answer had begun: it is never restarted, the client gets an error event.
        let victim = records.iter().find(|r| r.prompt == cut[0]).unwrap();
        assert!(
            matches!(victim.outcome, Outcome::Failed(_)),
            "the stream cut by the kill: {victim:?}"
        );
        one_generation_per_slot(&fleet);
        judge("worker killed", &records, &fleet.runs(), &fleet.logs);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_before_its_first_token_has_its_job_run_elsewhere_once() {
    with_cluster(LIMIT, |cluster| async move {
        let spec = FleetSpec {
            first_token_delay: Duration::from_secs(3),
            ..FleetSpec::default()
        };
        let mut fleet = Fleet::start(cluster, "worker_killed_early", &spec).await;
        let mut traffic = Traffic::new();
        // Every slot takes a job that says nothing for 3 s; one more waits in the queue.
        busy_and_queued(&fleet, &mut traffic, 20, 1).await;
        let silent = fleet.running_on(1);
        assert_eq!(silent.len(), 1, "worker-1 runs one job");
        fleet.workers[1].kill().await;
        fleet.workers[1].restart(cluster).await;
        fleet.wait_ready().await;
        let mut records = recovers(&fleet, &mut traffic, "worker-1 restarted").await;
        records.extend(traffic.finish().await);
        let moved = records.iter().find(|r| r.prompt == silent[0]).unwrap();
        assert_eq!(
            moved.outcome,
            Outcome::Completed,
            "{}: no token had left, so another worker runs it; logs in {}",
            moved.label,
            fleet.logs.display()
        );
        one_generation_per_slot(&fleet);
        judge(
            "worker killed before its first token",
            &records,
            &fleet.runs(),
            &fleet.logs,
        );
    })
    .await;
}

/// No fake ever ran more generations at once than its worker has slots.
fn one_generation_per_slot(fleet: &Fleet) {
    for (i, fake) in fleet.fakes.iter().enumerate() {
        assert!(
            fake.max_concurrent() <= fleet.slots(),
            "worker-{i}'s Ollama ran {} generations at once",
            fake.max_concurrent()
        );
    }
}
