//! Fails queued jobs at their tier's deadline, even while no worker is free to look at them.
//! Lane heads carry the earliest deadlines, so one task sleeps until the earliest of them.

use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::Notify;

use super::Inner;
use super::lane::Queued;
use crate::queue::{Job, JobFailure};

/// Why a job that waited too long failed.
pub(super) fn expired(job: &Job) -> JobFailure {
    JobFailure::new(
        503,
        format!(
            "the request waited longer than the {} tier's limit of {} s in the queue",
            job.tier,
            job.max_wait.as_secs()
        ),
    )
}

/// The expiry task: runs until the queue is closed or gone.
pub(super) async fn run(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let wakeup = wake.notified();
        tokio::pin!(wakeup);
        wakeup.as_mut().enable();
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            let now = Instant::now();
            let due: Vec<Queued> = {
                let mut state = inner.lock();
                if state.closed {
                    return;
                }
                let mut due = Vec::new();
                for lane in 0..state.lanes.len() {
                    while state.lanes[lane]
                        .head_deadline()
                        .is_some_and(|deadline| deadline <= now)
                    {
                        due.extend(state.pop_head(lane));
                    }
                }
                due
            };
            for q in due {
                let failure = expired(&q.job);
                q.fail(failure);
            }
            inner.lock().next_deadline()
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => {}
                    () = &mut wakeup => {}
                }
            }
            None => wakeup.await,
        }
    }
}
