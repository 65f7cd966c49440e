//! Gateway side of the RabbitMQ backend: publishes each job at its priority, ages it by
//! publishing copies one level higher, arbitrates claims (one grant per job, whatever copies
//! exist) and routes the reply queue's events to each job's ticket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Event};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::broker::{self, Names};
use super::wire::{Announcement, Control, JobMessage, Reply};
use super::{BrokerStatus, RabbitConfig};
use crate::catalog::ModelDirectory;
use crate::ollama::wire::ModelEntry;
use crate::queue::priority::{TOP_LEVEL, effective_level};
use crate::queue::{
    BackendHealth, Job, JobBoard, JobEvent, JobFailure, JobQueue, JobTicket, QueueError,
    QueueSnapshot, TierDepth,
};

/// Events buffered per client; a client that falls this far behind is dropped.
const EVENT_BUFFER: usize = 4096;

/// The gateway's handle on the broker.
#[derive(Debug, Clone)]
pub struct RabbitGateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RabbitConfig,
    names: Names,
    reply_queue: String,
    aging: Duration,
    max_queued: HashMap<String, usize>,
    jobs: Mutex<HashMap<String, Tracked>>,
    board: Arc<JobBoard>,
    channel: watch::Sender<Option<Channel>>,
    status: Mutex<BrokerStatus>,
    /// (control queue, job id) of jobs whose worker must stop.
    cancels: mpsc::UnboundedSender<(String, String)>,
    announcements: Mutex<HashMap<String, (Announcement, Instant)>>,
    shutdown: CancellationToken,
}

/// A worker not heard from for this long is considered gone.
const WORKER_SILENCE: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Tracked {
    job: Arc<Job>,
    events: mpsc::Sender<JobEvent>,
    enqueued: Instant,
    copies: u8,
    phase: Phase,
    tokens_sent: bool,
}

#[derive(Debug, Clone)]
enum Phase {
    Queued,
    Granted { control: String, copy: u8 },
}

impl RabbitGateway {
    /// Starts the connection supervisor; the gateway answers (503) while the broker is away.
    pub fn start(
        config: RabbitConfig,
        aging: Duration,
        max_queued: HashMap<String, usize>,
    ) -> Self {
        let names = Names::new(&config.prefix);
        let reply_queue = names.reply(&config.instance);
        let (cancels, cancels_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            names,
            reply_queue,
            aging,
            max_queued,
            jobs: Mutex::default(),
            board: Arc::default(),
            channel: watch::Sender::new(None),
            status: Mutex::default(),
            cancels,
            announcements: Mutex::default(),
            shutdown: CancellationToken::new(),
            config,
        });
        tokio::spawn(supervise(Arc::clone(&inner), cancels_rx));
        Self { inner }
    }

    /// Broker connection state, for health and admin views.
    pub fn status(&self) -> BrokerStatus {
        self.inner.status_lock().clone()
    }

    /// Refuses new jobs and fails the queued ones; running jobs go on.
    pub fn drain(&self) {
        self.inner.status_lock().closing = true;
        self.clear(None);
    }

    /// Closes the broker connections.
    pub fn close(&self) {
        self.drain();
        self.inner.shutdown.cancel();
    }
}

impl Inner {
    fn live_workers(&self) -> Vec<Announcement> {
        let mut seen = self
            .announcements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|_, (_, at)| at.elapsed() < WORKER_SILENCE);
        seen.values().map(|(a, _)| a.clone()).collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tracked>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn status_lock(&self) -> MutexGuard<'_, BrokerStatus> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes copy `copy` of a job at `level`, expiring when the next copy supersedes it.
    async fn publish_copy(
        &self,
        job: &Job,
        copy: u8,
        level: u8,
        remaining: Duration,
    ) -> Result<(), QueueError> {
        let channel = self.channel.borrow().clone().ok_or_else(unavailable)?;
        let message = JobMessage {
            v: 1,
            job: job.clone(),
            copy,
            reply_to: self.reply_queue.clone(),
        };
        let payload =
            serde_json::to_vec(&message).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        // Stale copies expire (at the queue head) instead of piling up; the top-level copy
        // lives as long as the job may wait.
        let ttl = if level < TOP_LEVEL {
            (self.aging * 2).min(remaining)
        } else {
            remaining
        };
        let properties = broker::json_properties(&job.id)
            .with_message_id(job.id.as_str().into())
            .with_reply_to(self.reply_queue.as_str().into())
            .with_priority(level)
            .with_expiration(ttl.as_millis().max(1).to_string().into());
        broker::publish(&channel, &self.names.jobs(), &payload, properties, false)
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Unavailable(e.to_string()))
    }

    /// Removes a job and tells its client why.
    fn fail(&self, job_id: &str, failure: JobFailure) {
        if let Some(tracked) = self.lock().remove(job_id) {
            let _ = tracked.events.try_send(JobEvent::Failed(failure));
        }
    }

    /// Decides a claim: the first claim of a queued job wins; a redelivery of the granted copy
    /// (its worker died) is granted again only if the client has seen nothing yet.
    fn decide(&self, job_id: &str, copy: u8, redelivered: bool, control: &str) -> bool {
        let mut jobs = self.lock();
        let Some(tracked) = jobs.get_mut(job_id) else {
            return false;
        };
        match tracked.phase.clone() {
            Phase::Queued if tracked.enqueued.elapsed() > tracked.job.max_wait => {
                drop(jobs);
                self.fail(job_id, expired(job_id));
                false
            }
            Phase::Queued => {
                tracked.phase = Phase::Granted {
                    control: control.to_owned(),
                    copy,
                };
                true
            }
            Phase::Granted { copy: granted, .. } if granted == copy && redelivered => {
                if tracked.tokens_sent {
                    drop(jobs);
                    self.fail(
                        job_id,
                        JobFailure::new(502, "the worker running this request stopped mid-answer"),
                    );
                    false
                } else {
                    tracked.phase = Phase::Granted {
                        control: control.to_owned(),
                        copy,
                    };
                    true
                }
            }
            Phase::Granted { .. } => false,
        }
    }

    /// Control queues of the workers running this gateway's jobs.
    fn granted_controls(&self) -> Vec<String> {
        let mut controls: Vec<String> = self
            .lock()
            .values()
            .filter_map(|t| match &t.phase {
                Phase::Granted { control, .. } => Some(control.clone()),
                Phase::Queued => None,
            })
            .collect();
        controls.sort_unstable();
        controls.dedup();
        controls
    }

    /// A worker vanished: its jobs that sent nothing yet go back to the queue, the others end
    /// with an error (a half answer is never restarted).
    async fn worker_gone(self: &Arc<Self>, control: &str) {
        let mut requeue = Vec::new();
        let mut failed = Vec::new();
        {
            let mut jobs = self.lock();
            for (id, t) in jobs.iter_mut() {
                if !matches!(&t.phase, Phase::Granted { control: c, .. } if c == control) {
                    continue;
                }
                if t.tokens_sent {
                    failed.push(id.clone());
                } else {
                    t.phase = Phase::Queued;
                    requeue.push((Arc::clone(&t.job), t.copies, t.enqueued));
                    t.copies = t.copies.saturating_add(1);
                }
            }
        }
        for id in failed {
            tracing::warn!(job = %id, "worker vanished mid-answer");
            self.fail(
                &id,
                JobFailure::new(502, "the worker running this request stopped mid-answer"),
            );
        }
        for (job, copies, enqueued) in requeue {
            tracing::warn!(job = %job.id, "worker vanished before answering; job queued again");
            let level = effective_level(job.base_level, enqueued.elapsed(), self.aging);
            let remaining = job.max_wait.saturating_sub(enqueued.elapsed());
            if let Err(e) = self.publish_copy(&job, copies, level, remaining).await {
                tracing::warn!(job = %job.id, error = %e, "could not queue the job again");
            }
            tokio::spawn(age(Arc::downgrade(self), job.id.clone(), self.aging));
        }
    }

    /// Hands a worker's events to the job's ticket.
    fn forward(&self, job_id: &str, events: Vec<JobEvent>) {
        let mut jobs = self.lock();
        let Some(tracked) = jobs.get_mut(job_id) else {
            return;
        };
        for event in events {
            let last = matches!(event, JobEvent::Finished { .. } | JobEvent::Failed(_));
            tracked.tokens_sent |= matches!(event, JobEvent::Delta(_));
            if tracked.events.try_send(event).is_err() || last {
                // Done, or the client stopped reading: either way the job ends here.
                if let Some(Tracked {
                    phase: Phase::Granted { control, .. },
                    ..
                }) = jobs.remove(job_id)
                    && !last
                {
                    let _ = self.cancels.send((control, job_id.to_owned()));
                }
                return;
            }
        }
    }

    /// The client let go of its ticket: forget the job and stop its worker.
    fn forget(&self, job_id: &str) {
        let removed = self.lock().remove(job_id);
        if let Some(Tracked {
            phase: Phase::Granted { control, .. },
            ..
        }) = removed
        {
            // The session loop publishes the order.
            let _ = self.cancels.send((control, job_id.to_owned()));
        }
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

/// Ages one job: at each interval it publishes a copy one level up; at the deadline a still
/// queued job fails. Ends as soon as the job is claimed or gone.
async fn age(inner: Weak<Inner>, job_id: String, aging: Duration) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let (job, next_at, deadline, copies) = {
            let jobs = strong.lock();
            let Some(t) = jobs.get(&job_id) else { return };
            if !matches!(t.phase, Phase::Queued) {
                return;
            }
            let level = effective_level(t.job.base_level, t.enqueued.elapsed(), aging);
            let next_at = (level < TOP_LEVEL).then(|| t.enqueued + aging * u32::from(t.copies));
            (
                Arc::clone(&t.job),
                next_at,
                t.enqueued + t.job.max_wait,
                t.copies,
            )
        };
        let shutdown = strong.shutdown.clone();
        drop(strong);
        let sleep_until = next_at.unwrap_or(deadline).min(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(sleep_until.into()) => {}
            () = shutdown.cancelled() => return,
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if Instant::now() >= deadline {
            let still_queued = matches!(
                strong.lock().get(&job_id).map(|t| &t.phase),
                Some(Phase::Queued)
            );
            if still_queued {
                strong.fail(&job_id, expired(&job_id));
            }
            return;
        }
        let level = job.base_level.saturating_add(copies).min(TOP_LEVEL);
        {
            let mut jobs = strong.lock();
            match jobs.get_mut(&job_id) {
                Some(t) if matches!(t.phase, Phase::Queued) => t.copies = copies + 1,
                _ => return,
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = strong.publish_copy(&job, copies, level, remaining).await {
            tracing::warn!(job = %job_id, error = %e, "could not publish an aged copy; will retry");
        }
    }
}

impl ModelDirectory for RabbitGateway {
    fn models(&self) -> Vec<ModelEntry> {
        let mut models: Vec<ModelEntry> = Vec::new();
        for worker in self.inner.live_workers() {
            for value in worker.models {
                if let Ok(entry) = serde_json::from_value::<ModelEntry>(value)
                    && !models.iter().any(|m| m.name == entry.name)
                {
                    models.push(entry);
                }
            }
        }
        models
    }

    fn workers(&self) -> (usize, usize) {
        let live = self.inner.live_workers();
        (live.len(), live.iter().filter(|w| w.ollama_ok).count())
    }
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
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let job = Arc::new(job);
        let ticket = {
            let inner = Arc::downgrade(&self.inner);
            let job_id = job.id.clone();
            JobTicket::new(&job, rx, Arc::clone(&self.inner.board), move || {
                if let Some(inner) = inner.upgrade() {
                    inner.forget(&job_id);
                }
            })
        };
        {
            let mut jobs = self.inner.lock();
            if let Some(&max_queued) = self.inner.max_queued.get(&job.tier) {
                let queued = jobs
                    .values()
                    .filter(|t| t.job.tier == job.tier && matches!(t.phase, Phase::Queued))
                    .count();
                if queued >= max_queued {
                    return Err(QueueError::TierFull {
                        tier: job.tier.clone(),
                        max_queued,
                    });
                }
            }
            jobs.insert(
                job.id.clone(),
                Tracked {
                    job: Arc::clone(&job),
                    events: tx,
                    enqueued: Instant::now(),
                    copies: 1,
                    phase: Phase::Queued,
                    tokens_sent: false,
                },
            );
        }
        self.inner
            .publish_copy(&job, 0, job.base_level, job.max_wait)
            .await?;
        tokio::spawn(age(
            Arc::downgrade(&self.inner),
            job.id.clone(),
            self.inner.aging,
        ));
        Ok(ticket)
    }

    fn position(&self, job_id: &str) -> Option<usize> {
        let jobs = self.inner.lock();
        let me = jobs
            .get(job_id)
            .filter(|t| matches!(t.phase, Phase::Queued))?;
        let rank = |t: &Tracked| {
            (
                effective_level(t.job.base_level, t.enqueued.elapsed(), self.inner.aging),
                std::cmp::Reverse(t.enqueued),
            )
        };
        let mine = rank(me);
        // Only this gateway's jobs are known here; other gateways' work is not counted.
        Some(
            jobs.values()
                .filter(|t| matches!(t.phase, Phase::Queued) && rank(t) > mine)
                .count(),
        )
    }

    fn snapshot(&self) -> QueueSnapshot {
        let jobs = self.inner.lock();
        let mut tiers: std::collections::BTreeMap<&str, TierDepth> =
            std::collections::BTreeMap::new();
        for t in jobs.values().filter(|t| matches!(t.phase, Phase::Queued)) {
            let entry = tiers.entry(&t.job.tier).or_insert_with(|| TierDepth {
                tier: t.job.tier.clone(),
                queued: 0,
                oldest_wait_secs: 0.0,
            });
            entry.queued += 1;
            entry.oldest_wait_secs = entry
                .oldest_wait_secs
                .max(t.enqueued.elapsed().as_secs_f64());
        }
        QueueSnapshot {
            tiers: tiers.into_values().collect(),
            running: jobs.len()
                - jobs
                    .values()
                    .filter(|t| matches!(t.phase, Phase::Queued))
                    .count(),
        }
    }

    fn clear(&self, tier: Option<&str>) -> usize {
        let doomed: Vec<String> = self
            .inner
            .lock()
            .iter()
            .filter(|(_, t)| {
                matches!(t.phase, Phase::Queued) && tier.is_none_or(|x| t.job.tier == x)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &doomed {
            self.inner.fail(
                id,
                JobFailure::new(503, "the queue was cleared by an administrator"),
            );
        }
        doomed.len()
    }

    fn board(&self) -> &JobBoard {
        &self.inner.board
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

/// Keeps a session with the broker up, reconnecting with backoff.
async fn supervise(inner: Arc<Inner>, mut cancels: mpsc::UnboundedReceiver<(String, String)>) {
    let mut attempt = 0;
    loop {
        match session(&inner, &mut cancels, &mut attempt).await {
            Ok(()) => return,
            Err(e) => {
                inner.channel.send_replace(None);
                {
                    let mut status = inner.status_lock();
                    status.connected = false;
                    status.last_error = Some(e.clone());
                }
                if inner.shutdown.is_cancelled() {
                    return;
                }
                tracing::warn!(error = %e, "broker session ended; reconnecting");
                broker::backoff(attempt).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

async fn session(
    inner: &Arc<Inner>,
    cancels: &mut mpsc::UnboundedReceiver<(String, String)>,
    attempt: &mut u32,
) -> Result<(), String> {
    let e = |e: lapin::Error| e.to_string();
    let instance = &inner.config.instance;
    let publish = broker::connect(
        &inner.config.url,
        &format!("seadragon gateway {instance} publish"),
    )
    .await
    .map_err(e)?;
    let consume = broker::connect(
        &inner.config.url,
        &format!("seadragon gateway {instance} consume"),
    )
    .await
    .map_err(e)?;
    let channel = broker::confirm_channel(&publish).await.map_err(e)?;
    broker::declare_shared(&channel, &inner.names)
        .await
        .map_err(e)?;
    broker::declare_owned(&channel, &inner.reply_queue)
        .await
        .map_err(e)?;
    let mut publish_events = publish.events_listener();
    let mut consume_events = consume.events_listener();
    let replies = consume.create_channel().await.map_err(e)?;
    replies
        .basic_qos(1000, BasicQosOptions::default())
        .await
        .map_err(e)?;
    let mut consumer = replies
        .basic_consume(
            inner.reply_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(e)?;
    let announce_queue = inner.names.announcements(instance);
    broker::declare_owned(&channel, &announce_queue)
        .await
        .map_err(e)?;
    channel
        .queue_bind(
            announce_queue.as_str().into(),
            inner.names.workers().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(e)?;
    let announce_channel = consume.create_channel().await.map_err(e)?;
    let mut announcements = announce_channel
        .basic_consume(
            announce_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(e)?;
    inner.channel.send_replace(Some(channel.clone()));
    {
        let mut status = inner.status_lock();
        status.connected = true;
        status.blocked = false;
        status.last_error = None;
    }
    *attempt = 0;
    tracing::info!(queue = %inner.reply_queue, "connected to the broker");
    let mut liveness = tokio::time::interval(broker::LIVENESS_EVERY);
    let mut probe = None;
    loop {
        tokio::select! {
            _ = liveness.tick() => {
                let controls = inner.granted_controls();
                if !controls.is_empty() {
                    for control in broker::queues_without_consumers(&consume, &mut probe, controls).await.map_err(e)? {
                        inner.worker_gone(&control).await;
                    }
                }
            }
            delivery = consumer.next() => {
                let delivery = delivery.ok_or("the broker cancelled the reply consumer")?.map_err(e)?;
                handle_reply(inner, &channel, &delivery.data).await;
                delivery.acker.ack(BasicAckOptions::default()).await.map_err(e)?;
            }
            announcement = announcements.next() => {
                let announcement = announcement.ok_or("the broker cancelled the announcement consumer")?.map_err(e)?;
                if let Ok(a) = serde_json::from_slice::<Announcement>(&announcement.data) {
                    inner
                        .announcements
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(a.worker.clone(), (a, Instant::now()));
                }
            }
            event = publish_events.next() => match event {
                Some(Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%reason, "broker blocked publishing");
                    inner.status_lock().blocked = true;
                }
                Some(Event::ConnectionUnblocked) => inner.status_lock().blocked = false,
                Some(Event::Error(err)) => return Err(err.to_string()),
                _ => {}
            },
            event = consume_events.next() => {
                if let Some(Event::Error(err)) = event {
                    return Err(err.to_string());
                }
            }
            Some((control, job_id)) = cancels.recv() => {
                send_control(&channel, &control, &Control::Cancel { job_id }).await;
            }
            () = inner.shutdown.cancelled() => {
                let _ = publish.close(200, "shutdown".into()).await;
                let _ = consume.close(200, "shutdown".into()).await;
                return Ok(());
            }
        }
    }
}

async fn handle_reply(inner: &Arc<Inner>, channel: &Channel, data: &[u8]) {
    match serde_json::from_slice::<Reply>(data) {
        Ok(Reply::Claim {
            job_id,
            copy,
            redelivered,
            control,
            ..
        }) => {
            let order = if inner.decide(&job_id, copy, redelivered, &control) {
                Control::Grant { job_id }
            } else {
                Control::Deny { job_id }
            };
            send_control(channel, &control, &order).await;
        }
        Ok(Reply::Events { job_id, events }) => inner.forward(&job_id, events),
        Err(err) => tracing::warn!(error = %err, "unreadable message on the reply queue; dropped"),
    }
}

async fn send_control(channel: &Channel, control: &str, order: &Control) {
    let Ok(payload) = serde_json::to_vec(order) else {
        return;
    };
    let properties = broker::json_properties(order.job_id());
    if let Err(err) = broker::publish(channel, control, &payload, properties, false).await {
        tracing::warn!(error = %err, queue = control, "could not send an order to a worker");
    }
}
