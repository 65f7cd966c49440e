//! The embedded queue alone: order, rescues, admission, expiry, cancellation.

use std::time::Duration;

use super::*;
use crate::queue::{Claim, JobEvent};

fn job(id: &str, tier: &str, level: u8) -> Job {
    Job {
        id: id.into(),
        tier: tier.into(),
        base_level: level,
        key_id: "key".into(),
        model: "m".into(),
        kind: crate::queue::JobKind::Chat,
        body: serde_json::value::to_raw_value(&()).unwrap().into(),
        max_wait: Duration::from_secs(600),
        enqueued_at_ms: 0,
    }
}

/// A queue where `free` holds at most two jobs and every tier starves after `starvation`.
fn queue(starvation: Duration) -> EmbeddedQueue {
    let free = crate::queue::TierRule {
        priority: 1,
        starvation,
        max_queued: Some(2),
    };
    EmbeddedQueue::new(QueuePolicy {
        tiers: HashMap::from([("free".to_owned(), free)]),
        default_starvation: starvation,
        ..QueuePolicy::default()
    })
}

fn position(q: &EmbeddedQueue, id: &str) -> Option<usize> {
    q.standing(id).map(|s| s.position)
}

async fn next_id(q: &EmbeddedQueue) -> String {
    q.next().await.unwrap().job().id.clone()
}

#[tokio::test]
async fn higher_levels_run_first_and_ties_keep_arrival_order() {
    let q = queue(Duration::from_secs(3600));
    let _t: Vec<_> = [("f1", 1), ("p1", 2), ("e1", 3), ("p2", 2), ("e2", 3)]
        .into_iter()
        .map(|(id, l)| {
            let q = q.clone();
            async move { q.submit(job(id, "pro", l)).await.unwrap() }
        })
        .collect::<futures_util::future::JoinAll<_>>()
        .await;
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(next_id(&q).await);
    }
    assert_eq!(order, ["e1", "e2", "p1", "p2", "f1"]);
}

#[tokio::test]
async fn a_starving_job_is_rescued_above_fresh_top_tier_work() {
    let starvation = Duration::from_millis(40);
    let q = queue(starvation);
    let _old = q.submit(job("old", "pro", 1)).await.unwrap();
    let _young = q.submit(job("young", "pro", 2)).await.unwrap();
    tokio::time::sleep(starvation + Duration::from_millis(5)).await;
    let _new = q.submit(job("ent", "pro", 3)).await.unwrap();
    assert_eq!(q.snapshot().tiers[0].starving, 2);
    // The oldest starving job goes first; the ration then allows no second rescue at once.
    assert_eq!(next_id(&q).await, "old");
    assert_eq!(next_id(&q).await, "ent");
    assert_eq!(next_id(&q).await, "young");
    assert_eq!(q.scheduling().rescues["pro"], 1);
}

#[tokio::test]
async fn a_job_that_has_not_starved_waits_behind_every_higher_level() {
    let q = queue(Duration::from_secs(3600));
    let _old = q.submit(job("old", "pro", 1)).await.unwrap();
    let _new = q.submit(job("ent", "pro", 3)).await.unwrap();
    assert_eq!(next_id(&q).await, "ent");
    assert_eq!(next_id(&q).await, "old");
    assert!(q.scheduling().rescues.is_empty());
}

#[tokio::test]
async fn under_a_flood_every_tenth_dispatch_at_most_is_a_rescue() {
    let q = queue(Duration::ZERO);
    let mut held = Vec::new();
    for i in 0..20 {
        held.push(q.submit(job(&format!("f{i}"), "pro", 1)).await.unwrap());
    }
    for i in 0..100 {
        held.push(q.submit(job(&format!("e{i}"), "pro", 3)).await.unwrap());
    }
    let mut rescued_at = Vec::new();
    for n in 0..50 {
        if next_id(&q).await.starts_with('f') {
            rescued_at.push(n);
        }
    }
    assert_eq!(rescued_at, [0, 10, 20, 30, 40]);
    let view = q.scheduling();
    assert!((view.recent_rescue_share - 0.1).abs() < 1e-9, "{view:?}");
}

#[tokio::test]
async fn a_cold_queue_admits_whatever_its_depth() {
    let q = queue(Duration::from_secs(3600));
    let mut held = Vec::new();
    for i in 0..500 {
        let mut j = job(&format!("j{i}"), "pro", 2);
        j.max_wait = Duration::from_millis(1);
        held.push(q.submit(j).await.unwrap());
    }
}

#[tokio::test]
async fn a_job_predicted_to_wait_past_its_limit_is_refused_at_admission() {
    let q = queue(Duration::from_secs(3600));
    // Twenty dispatches within a second: about 20 a second.
    for i in 0..20 {
        let _t = q.submit(job(&format!("w{i}"), "pro", 2)).await.unwrap();
        q.next().await.unwrap();
    }
    let mut held = Vec::new();
    let refused = loop {
        let mut j = job(&format!("j{}", held.len()), "pro", 2);
        j.max_wait = Duration::from_secs(1);
        match q.submit(j).await {
            Ok(ticket) => held.push(ticket),
            Err(e) => break e,
        }
        assert!(held.len() <= 40, "never refused");
    };
    // At 20 a second, one second of wait is about 20 jobs ahead.
    assert!((19..=21).contains(&held.len()), "{}", held.len());
    assert!(
        matches!(&refused, QueueError::WouldWait { tier, wait, .. } if tier == "pro" && *wait > Duration::from_secs(1)),
        "{refused:?}"
    );
    // A higher level is not behind that queue, so it still enters.
    let mut ent = job("ent", "pro", 3);
    ent.max_wait = Duration::from_secs(1);
    assert!(q.submit(ent).await.is_ok());
}

#[tokio::test]
async fn a_dropped_ticket_removes_its_queued_job() {
    let q = queue(Duration::from_secs(3600));
    let gone = q.submit(job("gone", "pro", 3)).await.unwrap();
    let _kept = q.submit(job("kept", "pro", 1)).await.unwrap();
    assert_eq!(q.snapshot().queued(), 2);
    drop(gone);
    assert_eq!(q.snapshot().queued(), 1);
    assert_eq!(next_id(&q).await, "kept");
}

#[tokio::test]
async fn a_claim_is_denied_once_the_client_left() {
    let q = queue(Duration::from_secs(3600));
    let ticket = q.submit(job("j", "pro", 1)).await.unwrap();
    let delivery = q.next().await.unwrap();
    drop(ticket);
    assert!(matches!(delivery.claim("w", 1).await, Claim::Denied));
}

#[tokio::test]
async fn a_full_tier_refuses_new_jobs_and_other_tiers_still_enter() {
    let q = queue(Duration::from_secs(3600));
    let _a = q.submit(job("a", "free", 1)).await.unwrap();
    let _b = q.submit(job("b", "free", 1)).await.unwrap();
    let refused = q.submit(job("c", "free", 1)).await.unwrap_err();
    assert!(matches!(
        refused,
        QueueError::TierFull { max_queued: 2, .. }
    ));
    assert!(q.submit(job("d", "pro", 2)).await.is_ok());
}

#[tokio::test]
async fn position_counts_the_jobs_dispatched_before() {
    let q = queue(Duration::from_secs(3600));
    let _a = q.submit(job("a", "pro", 1)).await.unwrap();
    let _b = q.submit(job("b", "pro", 3)).await.unwrap();
    let _c = q.submit(job("c", "pro", 1)).await.unwrap();
    assert_eq!(position(&q, "b"), Some(0));
    assert_eq!(position(&q, "a"), Some(1));
    assert_eq!(position(&q, "c"), Some(2));
    assert_eq!(position(&q, "nope"), None);
}

#[tokio::test]
async fn an_expired_job_fails_at_its_deadline_even_with_no_worker_looking() {
    let q = queue(Duration::from_secs(3600));
    let mut short = job("short", "pro", 3);
    short.max_wait = Duration::from_millis(30);
    let mut ticket = q.submit(short).await.unwrap();
    let _later = q.submit(job("later", "pro", 1)).await.unwrap();
    // Nobody takes jobs: the deadline alone must end the short one.
    assert!(matches!(ticket.next_event().await, Some(JobEvent::Failed(f)) if f.status == 503));
    assert_eq!(q.snapshot().queued(), 1);
    assert_eq!(next_id(&q).await, "later");
}

#[tokio::test]
async fn close_wakes_idle_workers() {
    let q = queue(Duration::from_secs(3600));
    let idle = {
        let q = q.clone();
        tokio::spawn(async move { q.next().await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    q.close();
    assert_eq!(idle.await.unwrap(), Err(QueueError::Closed));
}

#[tokio::test]
async fn close_fails_queued_jobs_and_refuses_new_ones() {
    let q = queue(Duration::from_secs(3600));
    let mut ticket = q.submit(job("j", "pro", 1)).await.unwrap();
    q.close();
    assert!(matches!(ticket.next_event().await, Some(JobEvent::Failed(f)) if f.status == 503));
    assert_eq!(
        q.submit(job("late", "pro", 1)).await.unwrap_err(),
        QueueError::Closed
    );
}

#[tokio::test]
async fn clear_fails_the_queued_jobs_of_one_tier_only() {
    let q = queue(Duration::from_secs(3600));
    let mut free = q.submit(job("f", "free", 1)).await.unwrap();
    let _pro = q.submit(job("p", "pro", 2)).await.unwrap();
    assert_eq!(q.clear(Some("free")), 1);
    assert!(matches!(free.next_event().await, Some(JobEvent::Failed(f)) if f.status == 503));
    assert_eq!(q.snapshot().queued(), 1);
    assert_eq!(q.clear(None), 1);
    assert_eq!(q.snapshot().queued(), 0);
}

#[tokio::test]
async fn the_board_follows_a_job_from_start_to_end() {
    let q = queue(Duration::from_secs(3600));
    let mut ticket = q.submit(job("j", "pro", 2)).await.unwrap();
    // The claim itself reports the start, with the worker's name and slots.
    let mut running = q
        .next()
        .await
        .unwrap()
        .claim("w1", 2)
        .await
        .granted()
        .unwrap();
    running
        .send(JobEvent::Delta(Default::default()))
        .await
        .unwrap();
    ticket.next_event().await;
    ticket.next_event().await;
    let board = q.board().running();
    assert_eq!(board.len(), 1);
    assert_eq!((board[0].worker.as_str(), board[0].tokens), ("w1", 1));
    assert_eq!(q.board().workers()[0].slots, 2);
    drop(ticket);
    assert!(q.board().running().is_empty());
    assert_eq!(q.board().workers()[0].running, 0);
}

#[tokio::test]
async fn a_job_that_leaves_from_the_middle_is_skipped_by_positions_and_dispatch() {
    let q = queue(Duration::from_secs(3600));
    let _a = q.submit(job("a", "pro", 2)).await.unwrap();
    let b = q.submit(job("b", "pro", 2)).await.unwrap();
    let _c = q.submit(job("c", "pro", 2)).await.unwrap();
    drop(b);
    assert_eq!(position(&q, "c"), Some(1));
    assert_eq!(position(&q, "b"), None);
    assert_eq!(next_id(&q).await, "a");
    assert_eq!(next_id(&q).await, "c");
    assert_eq!(q.snapshot().queued(), 0);
}

#[tokio::test]
async fn tiers_at_the_same_level_keep_arrival_order_between_them() {
    let q = queue(Duration::from_secs(3600));
    let _x = q.submit(job("x", "free", 2)).await.unwrap();
    let _y = q.submit(job("y", "pro", 2)).await.unwrap();
    let _z = q.submit(job("z", "free", 2)).await.unwrap();
    assert_eq!(position(&q, "z"), Some(2));
    for expected in ["x", "y", "z"] {
        assert_eq!(next_id(&q).await, expected);
    }
}

#[tokio::test]
async fn a_ticket_dropped_before_reading_its_claim_still_stops_the_worker() {
    let q = queue(Duration::from_secs(3600));
    let ticket = q.submit(job("j", "pro", 2)).await.unwrap();
    let running = q
        .next()
        .await
        .unwrap()
        .claim("w", 1)
        .await
        .granted()
        .unwrap();
    assert!(!running.cancelled().is_cancelled());
    drop(ticket);
    assert!(running.cancelled().is_cancelled());
}

#[tokio::test]
async fn a_short_deadline_behind_a_long_one_in_another_lane_still_expires_on_time() {
    let q = queue(Duration::from_secs(3600));
    let _long = q.submit(job("long", "pro", 2)).await.unwrap();
    let mut short = job("short", "free", 1);
    short.max_wait = Duration::from_millis(30);
    let mut ticket = q.submit(short).await.unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(2), ticket.next_event()).await;
    assert!(matches!(failed, Ok(Some(JobEvent::Failed(f))) if f.status == 503));
    assert_eq!(q.snapshot().queued(), 1);
}
