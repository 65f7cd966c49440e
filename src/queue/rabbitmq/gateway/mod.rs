//! Gateway side of the RabbitMQ backend: admits each job and publishes it at its level,
//! rescues starving jobs by publishing a copy at the rescue level when the system-wide ration
//! allows, arbitrates claims (one grant per job, whatever copies exist) and routes the reply
//! queue's events to each job's ticket.
//!
//! - [`jobs`]: the state of this gateway's jobs, publishing, events and expiry;
//! - [`claims`]: deciding claims, grant leases, and what happens when a worker vanishes;
//! - [`directory`]: the models and Ollama versions the workers announce;
//! - [`rescue`]: the rescue task, admission and where a job stands;
//! - [`session`]: the broker session (connections, consumers, reconnection);
//! - [`peers`]: what gateways tell each other, so queue views, the rescue ration and clears
//!   are system-wide.

mod claims;
mod directory;
mod jobs;
mod peers;
mod rescue;
mod session;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::Channel;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::broker::Names;
use super::wire::Announcement;
use super::{BrokerStatus, RabbitConfig, locked};
use crate::queue::ledger::DispatchLedger;
use crate::queue::{
    BackendHealth, Job, JobBoard, JobEvent, JobFailure, JobQueue, JobStanding, JobTicket,
    QueueError, QueuePolicy, QueueSnapshot, RunningJob, SchedulingView, TicketEvents, WorkerSeen,
    pacing,
};

/// The gateway's handle on the broker.
#[derive(Debug, Clone)]
pub struct RabbitGateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RabbitConfig,
    names: Names,
    /// Broker sessions so far: each names its own queues (see [`Names::owned`]).
    sessions: AtomicU32,
    /// This session's reply queue: where workers send claims and events.
    reply_queue: Mutex<String>,
    policy: QueuePolicy,
    jobs: Mutex<HashMap<String, Tracked>>,
    /// Dispatches and rescues, this gateway's and its peers'.
    ledger: Mutex<DispatchLedger>,
    board: Arc<JobBoard>,
    /// The channel jobs are published on (their own, see [`Inner::fresh_jobs_channel`]).
    channel: watch::Sender<Option<Channel>>,
    /// The session's publishing connection, for a fresh jobs channel.
    publisher: Mutex<Option<Arc<lapin::Connection>>>,
    /// Job queues declared in this broker session (one per model).
    declared: Mutex<HashSet<String>>,
    status: Mutex<BrokerStatus>,
    /// Orders the session loop publishes.
    outbox: mpsc::UnboundedSender<Outgoing>,
    peers: peers::Peers,
    announcements: Mutex<HashMap<String, (Announcement, Instant)>>,
    shutdown: CancellationToken,
}

/// A worker not heard from for this long is considered gone.
const WORKER_SILENCE: Duration = Duration::from_secs(10);

/// Something the session loop must publish for the rest of the gateway.
#[derive(Debug)]
enum Outgoing {
    /// Tell a worker to stop a job.
    Cancel { control: String, job_id: String },
    /// Tell the other gateways to clear their queued jobs.
    ClearPeers { tier: Option<String> },
}

#[derive(Debug)]
struct Tracked {
    job: Arc<Job>,
    events: mpsc::Sender<JobEvent>,
    /// Set while the client's buffer is full: later events queue here, behind the one a
    /// task is waiting to deliver (see [`pacing`]).
    overflow: Option<mpsc::Sender<JobEvent>>,
    enqueued: Instant,
    /// Copies published so far; the next copy's number.
    copies: u8,
    /// Grants so far; the next grant's number.
    leases: u32,
    /// A copy at the rescue level was published; a job is rescued once.
    rescued: bool,
    phase: Phase,
    tokens_sent: bool,
    /// Stops the job's expiry task as soon as the job is granted or gone, instead of at its
    /// deadline: at thousands of short jobs a second, sleeping tasks holding finished jobs
    /// added up to over 100 MB.
    expiry: ExpiryStop,
}

/// Cancels a job's expiry task when the job is dropped; granting cancels it too.
#[derive(Debug)]
struct ExpiryStop(CancellationToken);

impl Drop for ExpiryStop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[derive(Debug, Clone)]
enum Phase {
    Queued,
    Granted {
        /// The control queue of the worker holding the grant.
        control: String,
        copy: u8,
        /// The grant's number (see [`Tracked::leases`]).
        lease: u32,
        /// The worker reported the start; until then the grant may lapse.
        started: bool,
    },
}

impl RabbitGateway {
    /// Starts the connection supervisor and the rescue task; the gateway answers (503) while
    /// the broker is away.
    pub fn start(config: RabbitConfig, policy: QueuePolicy) -> Self {
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            names: Names::new(&config.prefix),
            sessions: AtomicU32::new(0),
            reply_queue: Mutex::default(),
            jobs: Mutex::default(),
            ledger: Mutex::new(DispatchLedger::new(policy.rescue_share)),
            policy,
            board: Arc::default(),
            channel: watch::Sender::new(None),
            publisher: Mutex::default(),
            declared: Mutex::default(),
            status: Mutex::default(),
            outbox,
            peers: peers::Peers::default(),
            announcements: Mutex::default(),
            shutdown: CancellationToken::new(),
            config,
        });
        tokio::spawn(session::supervise(Arc::clone(&inner), outbox_rx));
        tokio::spawn(rescue::run(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// Broker connection state, for health and admin views.
    pub fn status(&self) -> BrokerStatus {
        self.inner.status_lock().clone()
    }

    /// Refuses new jobs and fails the queued ones; running jobs go on.
    pub fn drain(&self) {
        self.inner.status_lock().closing = true;
        self.inner.clear_local(None);
    }

    /// Closes the broker connections.
    pub fn close(&self) {
        self.drain();
        self.inner.shutdown.cancel();
    }
}

impl Inner {
    /// Workers heard from lately, with how long ago.
    fn live_workers(&self) -> Vec<(Announcement, Duration)> {
        let mut seen = locked(&self.announcements);
        seen.retain(|_, (_, at)| at.elapsed() < WORKER_SILENCE);
        seen.values()
            .map(|(a, at)| (a.clone(), at.elapsed()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tracked>> {
        locked(&self.jobs)
    }

    fn ledger(&self) -> MutexGuard<'_, DispatchLedger> {
        locked(&self.ledger)
    }

    fn status_lock(&self) -> MutexGuard<'_, BrokerStatus> {
        locked(&self.status)
    }
}

fn unavailable() -> QueueError {
    QueueError::Unavailable("the message broker is not connected".to_owned())
}

fn expired(job_id: &str) -> JobFailure {
    JobFailure::new(
        503,
        format!("the request {job_id} waited longer than its tier allows in the queue"),
    )
}

#[async_trait]
impl JobQueue for RabbitGateway {
    async fn submit(&self, job: Job) -> Result<JobTicket, QueueError> {
        {
            let status = self.inner.status_lock();
            if status.closing {
                return Err(QueueError::Closed);
            }
            if status.blocked {
                return Err(QueueError::Unavailable(
                    "the message broker is blocking publishers (resource alarm)".to_owned(),
                ));
            }
        }
        let (tx, rx) = pacing::channel();
        let job = Arc::new(job);
        let ticket = {
            let inner = Arc::downgrade(&self.inner);
            let job_id = job.id.clone();
            JobTicket::new(
                Arc::clone(&job),
                TicketEvents::Open(rx),
                Arc::clone(&self.inner.board),
                move || {
                    if let Some(inner) = inner.upgrade() {
                        inner.forget(&job_id);
                    }
                },
            )
        };
        let expiry = CancellationToken::new();
        let enqueued = Instant::now();
        {
            let mut jobs = self.inner.lock();
            self.inner.admit(&jobs, &job)?;
            jobs.insert(
                job.id.clone(),
                Tracked {
                    job: Arc::clone(&job),
                    events: tx,
                    overflow: None,
                    enqueued,
                    copies: 1,
                    leases: 0,
                    rescued: false,
                    phase: Phase::Queued,
                    tokens_sent: false,
                    expiry: ExpiryStop(expiry.clone()),
                },
            );
        }
        self.inner
            .publish_copy(&job, 0, job.base_level, job.max_wait)
            .await?;
        tokio::spawn(jobs::expire(
            Arc::downgrade(&self.inner),
            job.id.clone(),
            enqueued + job.max_wait,
            expiry,
        ));
        Ok(ticket)
    }

    fn standing(&self, job_id: &str) -> Option<JobStanding> {
        self.inner.standing(job_id)
    }

    fn scheduling(&self) -> SchedulingView {
        self.inner.ledger().view(Instant::now())
    }

    fn snapshot(&self) -> QueueSnapshot {
        self.inner.peers.merged(self.inner.local_snapshot())
    }

    fn clear(&self, tier: Option<&str>) -> usize {
        let at_peers: usize = match tier {
            Some(t) => self.inner.peers.queued_in(t),
            None => self.inner.peers.merged(QueueSnapshot::default()).queued(),
        };
        let _ = self.inner.outbox.send(Outgoing::ClearPeers {
            tier: tier.map(str::to_owned),
        });
        self.inner.clear_local(tier) + at_peers
    }

    fn board(&self) -> &JobBoard {
        &self.inner.board
    }

    fn running(&self) -> Vec<RunningJob> {
        let mut jobs = self.inner.board.running();
        jobs.extend(self.inner.peers.running_jobs());
        // Each job is on its owning gateway's board only, so the two lists never overlap.
        crate::queue::board::oldest_first(&mut jobs);
        jobs
    }

    fn workers_seen(&self) -> Vec<WorkerSeen> {
        let running = self.running();
        let now = crate::queue::board::unix_now();
        let mut workers: BTreeMap<String, WorkerSeen> = self
            .inner
            .board
            .workers()
            .into_iter()
            .map(|w| (w.name.clone(), w))
            .collect();
        for (announced, age) in self.inner.live_workers() {
            let heard = now.saturating_sub(age.as_secs());
            let worker = workers
                .entry(announced.worker.clone())
                .or_insert_with(|| WorkerSeen {
                    name: announced.worker,
                    slots: announced.slots,
                    running: 0,
                    last_seen: heard,
                });
            worker.slots = announced.slots;
            worker.last_seen = worker.last_seen.max(heard);
        }
        for worker in workers.values_mut() {
            worker.running = running.iter().filter(|j| j.worker == worker.name).count();
        }
        workers.into_values().collect()
    }

    fn health(&self) -> BackendHealth {
        let status = self.status();
        let detail = match (&status, status.last_error.as_deref()) {
            (BrokerStatus { blocked: true, .. }, _) => {
                "the broker blocks publishing (resource alarm)".to_owned()
            }
            (
                BrokerStatus {
                    connected: true, ..
                },
                _,
            ) => "connected".to_owned(),
            (_, Some(error)) => format!("disconnected: {error}"),
            (_, None) => "connecting".to_owned(),
        };
        BackendHealth {
            backend: "rabbitmq",
            ok: status.connected && !status.blocked,
            detail,
        }
    }
}
