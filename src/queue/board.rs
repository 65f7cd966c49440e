//! The gateway's board of running jobs (which worker, since when, tokens so far) and of the
//! workers it has seen. Fed by the events each [`JobTicket`](super::JobTicket) reads, so it works
//! the same whatever backend carries the jobs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Job;

/// A job a worker is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When recent jobs ended, for a throughput estimate (bounded ring).
    ends: VecDeque<Instant>,
}

/// A worker with nothing running that was not seen for this long is forgotten: worker names
/// change with every restart, and metric labels and admin views must not grow without bound.
const FORGET_IDLE_WORKER_SECS: u64 = 3600;

/// Ends remembered for the throughput estimate.
const ENDS_KEPT: usize = 1024;
/// How far back the throughput estimate looks.
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(60);

/// Sorts running jobs by start, ties by id, as every running-job list is shown.
pub fn oldest_first(jobs: &mut [RunningJob]) {
    jobs.sort_by(|a, b| (a.started_at, &a.job_id).cmp(&(b.started_at, &b.job_id)));
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Drops the workers that run nothing and were last seen over an hour before `now`.
fn forget_idle_workers(workers: &mut BTreeMap<String, WorkerSeen>, now: u64) {
    workers
        .retain(|_, w| w.running > 0 || now.saturating_sub(w.last_seen) < FORGET_IDLE_WORKER_SECS);
}

impl JobBoard {
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn started(&self, job: &Job, worker: &str, slots: usize) {
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
        forget_idle_workers(&mut board.workers, now);
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

    pub(super) fn tokens(&self, job_id: &str, count: u64) {
        if let Some(job) = self.lock().running.get_mut(job_id) {
            job.tokens += count;
        }
    }

    pub(super) fn ended(&self, job_id: &str) {
        let mut board = self.lock();
        if let Some(job) = board.running.remove(job_id) {
            if let Some(worker) = board.workers.get_mut(&job.worker) {
                worker.running = worker.running.saturating_sub(1);
            }
            if board.ends.len() == ENDS_KEPT {
                board.ends.pop_front();
            }
            board.ends.push_back(Instant::now());
        }
    }

    /// Jobs finished per second recently; `None` before any finished in the window.
    pub fn finished_per_sec(&self) -> Option<f64> {
        let board = self.lock();
        let recent: Vec<&Instant> = board
            .ends
            .iter()
            .filter(|t| t.elapsed() < THROUGHPUT_WINDOW)
            .collect();
        let oldest = recent.first()?;
        let span = oldest.elapsed().as_secs_f64().max(1.0);
        Some(recent.len() as f64 / span)
    }

    /// Running jobs, oldest first.
    pub fn running(&self) -> Vec<RunningJob> {
        let mut jobs: Vec<RunningJob> = self.lock().running.values().cloned().collect();
        oldest_first(&mut jobs);
        jobs
    }

    /// Workers seen, by name.
    pub fn workers(&self) -> Vec<WorkerSeen> {
        self.lock().workers.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(name: &str, running: usize, last_seen: u64) -> (String, WorkerSeen) {
        let seen = WorkerSeen {
            name: name.into(),
            slots: 1,
            running,
            last_seen,
        };
        (name.into(), seen)
    }

    #[test]
    fn idle_workers_unseen_for_an_hour_are_forgotten_busy_ones_kept() {
        let now = 10_000;
        let mut workers: BTreeMap<String, WorkerSeen> = [
            worker("recent", 0, now - 60),
            worker("gone", 0, now - FORGET_IDLE_WORKER_SECS),
            worker("busy", 1, now - 2 * FORGET_IDLE_WORKER_SECS),
        ]
        .into_iter()
        .collect();
        forget_idle_workers(&mut workers, now);
        let names: Vec<&str> = workers.keys().map(String::as_str).collect();
        assert_eq!(names, ["busy", "recent"]);
    }
}
