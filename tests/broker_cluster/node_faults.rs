//! Broker nodes dying: the node leading the job queues, and two of the three nodes at once.

use std::time::Duration;

use tokio::time::Instant;

use crate::client::Outcome;
use crate::fleet::{Fleet, FleetSpec};
use crate::tally::{Record, judge};
use crate::traffic::{Traffic, busy_and_queued, recovers};
use crate::with_cluster;

const LIMIT: Duration = Duration::from_secs(240);
/// Tokens of a stream that keeps every slot busy through the fault (10 ms each).
const LONG: usize = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_leading_the_job_queues_loses_no_accepted_request() {
    with_cluster(LIMIT, |cluster| async move {
        let fleet = Fleet::start(cluster, "leader_node_killed", &FleetSpec::default()).await;
        let mut traffic = Traffic::new();
        busy_and_queued(&fleet, &mut traffic, LONG, 6).await;
        let leader = cluster.job_queue_leader(&fleet.prefix).await;
        cluster.kill(leader).await;
        // Two nodes of three are a majority: work goes on while the third is away.
        let mut records = recovers(&fleet, &mut traffic, "the leader's node was killed").await;
        cluster.start(leader).await;
        records.extend(recovers(&fleet, &mut traffic, "the leader's node came back").await);
        records.extend(traffic.finish().await);
        judge(
            "job queues' leader node killed",
            &records,
            &fleet.runs(),
            &fleet.logs,
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_two_of_three_nodes_refuses_new_work_promptly_and_loses_nothing_accepted() {
    with_cluster(LIMIT, |cluster| async move {
        let fleet = Fleet::start(cluster, "two_nodes_lost", &FleetSpec::default()).await;
        let mut traffic = Traffic::new();
        busy_and_queued(&fleet, &mut traffic, LONG, 6).await;
        let leader = cluster.job_queue_leader(&fleet.prefix).await;
        let second = if leader == 1 { 2 } else { 1 };
        cluster.kill(leader).await;
        cluster.kill(second).await;
        // The last node pauses itself (pause_minority): no quorum, no broker at all.
        let mut records = refused_promptly(&fleet, &mut traffic).await;
        cluster.start(second).await;
        records.extend(recovers(&fleet, &mut traffic, "a second node came back").await);
        cluster.start(leader).await;
        records.extend(traffic.finish().await);
        judge(
            "two of three nodes killed",
            &records,
            &fleet.runs(),
            &fleet.logs,
        );
    })
    .await;
}

/// Checks that every gateway refuses new requests with 503 and `retry-after` within a bound
/// once the broker is gone, three times in a row, none of them hanging. Requests it still
/// accepted in the moment before run on in `traffic` (they must end properly too); refusals
/// are returned for the books.
async fn refused_promptly(fleet: &Fleet, traffic: &mut Traffic) -> Vec<Record> {
    const PROMPTLY: Duration = Duration::from_secs(10);
    let mut records = Vec::new();
    for g in 0..fleet.gateways.len() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut refused_in_a_row = 0;
        while refused_in_a_row < 3 {
            assert!(
                Instant::now() < deadline,
                "gateway-{g} did not refuse work with 503 and retry-after; {records:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            let asked = Instant::now();
            let Some(record) = traffic.probe(fleet, g, &format!("outage-gateway{g}")).await else {
                refused_in_a_row = 0;
                continue;
            };
            let refused = matches!(
                record.outcome,
                Outcome::Refused {
                    status: 503,
                    retry_after: true,
                    ..
                }
            );
            refused_in_a_row = if refused { refused_in_a_row + 1 } else { 0 };
            assert!(
                !refused || asked.elapsed() < PROMPTLY,
                "gateway-{g} took {:?} to refuse a request",
                asked.elapsed()
            );
            assert_ne!(
                record.outcome,
                Outcome::HungAtAdmission,
                "gateway-{g} neither took nor refused a request in time"
            );
            records.push(record);
        }
    }
    records
}
