//! The embedded queue under depth, in process: what queued jobs cost in memory, and whether
//! dispatch (`WorkQueue::next` + `Delivery::claim`) stays flat from 10 to 100,000 queued jobs.
//!
//! It runs in a process of its own (`bench --only queue`), so the resident-memory growth is
//! the queue's (jobs, their claim handles and the gateway's tickets) and not leftovers.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use seadragon::queue::embedded::EmbeddedQueue;
use seadragon::queue::{Job, JobQueue as _, JobTicket, QueuePolicy, WorkQueue as _};

use crate::procstat::own_rss_mb;
use crate::report::Dist;
use crate::{BenchError, Context as _, ContextNone as _};

/// Queue depths the dispatch time is measured at.
pub const DEPTHS: [usize; 4] = [10, 1_000, 10_000, 100_000];

/// What one depth measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DepthResult {
    /// Jobs queued while dispatch was timed.
    pub depth: usize,
    /// Resident memory added since the queue was empty, in MB (10^6 bytes).
    pub extra_rss_mb: f64,
    /// Time of `next` + `claim` per job, in microseconds.
    pub dispatch_us: Dist,
    /// Time of `submit` per job, in microseconds.
    pub submit_us: Dist,
}

fn job(n: usize) -> Job {
    Job {
        id: seadragon::ids::job_id(),
        tier: "bench".to_owned(),
        base_level: 3,
        key_id: "key_bench".to_owned(),
        model: crate::backend::MODEL.to_owned(),
        kind: seadragon::queue::JobKind::Chat,
        // Serializing a JSON value cannot fail.
        body: serde_json::value::to_raw_value(&json!({
            "model": crate::backend::MODEL,
            "messages": [{"role": "user", "content": format!("Write a short story about sea dragon {n}.")}],
            "stream": true,
        }))
        .unwrap_or_default()
        .into(),
        max_wait: Duration::from_secs(600),
        enqueued_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }
}

fn nanos(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_nanos()).unwrap_or(u32::MAX)
}

/// Fills one queue step by step to each depth and times `ops` dispatches at each, keeping the
/// depth constant by submitting one job per dispatched one.
pub async fn run(ops: usize) -> Result<Vec<DepthResult>, BenchError> {
    let max_depth = DEPTHS[DEPTHS.len() - 1];
    // The gateway holds one ticket per queued request. Their vector is reserved up front and
    // its pages become resident as tickets are written, so the RSS growth counts each ticket
    // once, inline part included, and never the vector's spare capacity.
    let mut tickets: VecDeque<JobTicket> = VecDeque::with_capacity(max_depth + ops + 1);
    // No tier limits and nothing ever starves: the bench measures the plain order.
    let queue = EmbeddedQueue::new(QueuePolicy {
        default_starvation: Duration::from_secs(86_400),
        ..QueuePolicy::default()
    });
    let before = own_rss_mb().ctx_none("cannot read this process's memory")?;
    let mut results = Vec::new();
    let mut n = 0;
    for depth in DEPTHS {
        let mut submit = Vec::with_capacity(depth);
        while tickets.len() < depth {
            let job = job(n);
            n += 1;
            let started = Instant::now();
            let ticket = queue.submit(job).await.ctx("submit refused")?;
            submit.push(nanos(started));
            tickets.push_back(ticket);
        }
        let extra_rss_mb = own_rss_mb().unwrap_or(before) - before;
        let mut dispatch = Vec::with_capacity(ops);
        for _ in 0..ops {
            tickets.push_back(queue.submit(job(n)).await.ctx("submit refused")?);
            n += 1;
            let started = Instant::now();
            let delivery = queue.next().await.ctx("the queue closed")?;
            let assignment = delivery.claim("bench", 1).await.granted();
            dispatch.push(nanos(started));
            if assignment.is_none() {
                return Err(BenchError("a queued job was denied its claim".into()));
            }
            // The oldest job was dispatched; its client lets go of its ticket.
            tickets.pop_front();
        }
        results.push(DepthResult {
            depth,
            extra_rss_mb,
            dispatch_us: Dist::thousandths(&mut dispatch),
            submit_us: Dist::thousandths(&mut submit),
        });
    }
    queue.close();
    Ok(results)
}
