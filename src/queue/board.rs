//! The gateway's board of running jobs (which worker, since when, tokens so far) and of the
//! workers it has seen. Fed by the events each [`JobTicket`](super::JobTicket) reads, so it works
//! the same whatever backend carries the jobs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Job;

/// A job a worker is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningJob {
    /// The job's id.
    pub job_id: String,
    /// Tier of the caller's key.
    pub tier: String,
    /// Id of the caller's key.
    pub key_id: String,
    /// Model the job runs on.
    pub model: String,
    /// Worker running it.
    pub worker: String,
    /// Unix seconds when the worker started it.
    pub started_at: u64,
    /// Deltas relayed so far (about one per token).
    pub tokens: u64,
}

/// A worker that has run a job for this gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerSeen {
    /// The worker's name.
    pub name: String,
    /// Generations it runs at once.
    pub slots: usize,
    /// Jobs of this gateway it runs now.
    pub running: usize,
    /// Unix seconds of its last job start.
    pub last_seen: u64,
}

/// Running jobs and workers seen, behind one lock held only for map updates.
#[derive(Debug, Default)]
pub struct JobBoard {
    inner: Mutex<Board>,
}

#[derive(Debug, Default)]
struct Board {
    running: HashMap<String, RunningJob>,
    workers: BTreeMap<String, WorkerSeen>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JobBoard {
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn started(&self, job: &JobSummary, worker: &str, slots: usize) {
        let now = unix_now();
        let mut board = self.lock();
        let seen = board
            .workers
            .entry(worker.to_owned())
            .or_insert_with(|| WorkerSeen {
                name: worker.to_owned(),
                slots,
                running: 0,
                last_seen: now,
            });
        seen.slots = slots;
        seen.last_seen = now;
        seen.running += 1;
        board.running.insert(
            job.id.clone(),
            RunningJob {
                job_id: job.id.clone(),
                tier: job.tier.clone(),
                key_id: job.key_id.clone(),
                model: job.model.clone(),
                worker: worker.to_owned(),
                started_at: now,
                tokens: 0,
            },
        );
    }

    pub(super) fn token(&self, job_id: &str) {
        if let Some(job) = self.lock().running.get_mut(job_id) {
            job.tokens += 1;
        }
    }

    pub(super) fn ended(&self, job_id: &str) {
        let mut board = self.lock();
        if let Some(job) = board.running.remove(job_id)
            && let Some(worker) = board.workers.get_mut(&job.worker)
        {
            worker.running = worker.running.saturating_sub(1);
        }
    }

    /// Running jobs, oldest first.
    pub fn running(&self) -> Vec<RunningJob> {
        let mut jobs: Vec<RunningJob> = self.lock().running.values().cloned().collect();
        jobs.sort_by(|a, b| (a.started_at, &a.job_id).cmp(&(b.started_at, &b.job_id)));
        jobs
    }

    /// Workers seen, by name.
    pub fn workers(&self) -> Vec<WorkerSeen> {
        self.lock().workers.values().cloned().collect()
    }
}

/// What the board keeps of a job.
#[derive(Debug, Clone)]
pub(super) struct JobSummary {
    pub id: String,
    pub tier: String,
    pub key_id: String,
    pub model: String,
}

impl From<&Job> for JobSummary {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id.clone(),
            tier: job.tier.clone(),
            key_id: job.key_id.clone(),
            model: job.model.clone(),
        }
    }
}
