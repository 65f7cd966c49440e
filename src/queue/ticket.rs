//! The gateway's handle on a submitted job: reads its events, records how it went, and when
//! dropped (whatever the path: answer complete, client gone, error) undoes everything the job
//! still holds, in one place and in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Job, JobBoard, JobEvent, JobFailure};
use crate::openai::Usage;

/// The gateway's handle on a submitted job. Dropping it cancels the job.
#[derive(Debug)]
pub struct JobTicket {
    job: Arc<Job>,
    events: TicketEvents,
    /// Stops the worker of a running job (backends that open events on claim).
    running: Option<CancellationToken>,
    board: Arc<JobBoard>,
    submitted: Instant,
    /// Tokens read by [`try_next_event`](Self::try_next_event) and not yet counted on the
    /// board: a drained burst is counted at once, at the next wait, not with one lock of the
    /// board per token.
    uncounted: u64,
    report: JobReport,
    on_end: Hook<dyn FnOnce(&JobReport) + Send + Sync>,
    leave_queue: Hook<dyn FnOnce() + Send + Sync>,
}

/// Where a ticket reads its job's events from.
#[derive(Debug)]
pub enum TicketEvents {
    /// The events flow through this channel from submission on.
    Open(mpsc::Receiver<JobEvent>),
    /// The backend opens the channel when a worker claims the job, so a queued job holds no
    /// event buffer; a job that fails before any claim sends its failure instead.
    OnClaim(oneshot::Receiver<Result<Claimed, JobFailure>>),
    /// A failure before the claim was delivered; nothing more follows.
    Ended,
}

/// What a ticket receives when a worker claims its job (see [`TicketEvents::OnClaim`]).
#[derive(Debug)]
pub struct Claimed {
    /// The job's events from now on.
    pub events: mpsc::Receiver<JobEvent>,
    /// Cancelled when the ticket is dropped, so the worker stops generating.
    pub cancel: CancellationToken,
}

/// How a job went, as its ticket saw it; given to [`JobTicket::on_end`] when the ticket is
/// dropped, i.e. when the gateway is done with the request, whatever the path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    /// From submission to the worker's start; `None` when the job never started.
    pub queue_wait: Option<Duration>,
    /// From submission to the first delta; `None` when none came.
    pub first_token: Option<Duration>,
    /// From the worker's start to the finished answer.
    pub generation: Option<Duration>,
    /// Token counts of a finished job.
    pub usage: Option<Usage>,
    /// How it ended.
    pub end: JobEnd,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobEnd {
    /// The gateway let go before a final event: the client left.
    #[default]
    Abandoned,
    /// The answer is complete.
    Finished,
    /// The job failed with this HTTP status (cleared, expired, Ollama errors, ...).
    Failed(u16),
    /// The events stopped without a final one (a worker lost beyond recovery).
    Lost,
}

impl JobTicket {
    /// A ticket reading `events` of `job`; `leave_queue` runs when the gateway lets go of the
    /// job, to take it out of the backend wherever it still is.
    pub fn new(
        job: Arc<Job>,
        events: TicketEvents,
        board: Arc<JobBoard>,
        leave_queue: impl FnOnce() + Send + Sync + 'static,
    ) -> Self {
        Self {
            job,
            events,
            running: None,
            board,
            submitted: Instant::now(),
            uncounted: 0,
            report: JobReport::default(),
            on_end: Hook(None),
            leave_queue: Hook(Some(Box::new(leave_queue))),
        }
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.job.id
    }

    /// Calls `report` once with how the job went, when the ticket is dropped.
    pub fn on_end(&mut self, report: impl FnOnce(&JobReport) + Send + Sync + 'static) {
        self.on_end = Hook(Some(Box::new(report)));
    }

    /// The next event; `None` when the job ended without a final event (e.g. a worker crash
    /// the backend could not recover from).
    pub async fn next_event(&mut self) -> Option<JobEvent> {
        self.count_tokens();
        let event = self.receive().await;
        self.note(&event);
        self.count_tokens();
        event
    }

    /// The next event if one has already arrived, without waiting: a reader drains what is
    /// ready and writes it in one burst. `None` when nothing is ready (or the events are not
    /// open yet); the end of the events is left for [`next_event`](Self::next_event) to report.
    pub fn try_next_event(&mut self) -> Option<JobEvent> {
        let TicketEvents::Open(events) = &mut self.events else {
            return None;
        };
        let event = events.try_recv().ok()?;
        let event = Some(event);
        self.note(&event);
        event
    }

    /// Puts the tokens read so far on the board.
    fn count_tokens(&mut self) {
        if self.uncounted > 0 {
            self.board
                .tokens(&self.job.id, std::mem::take(&mut self.uncounted));
        }
    }

    /// What the board and the report learn from one event.
    fn note(&mut self, event: &Option<JobEvent>) {
        if !matches!(
            event,
            Some(JobEvent::Delta(_) | JobEvent::Embeddings { .. })
        ) {
            self.count_tokens();
        }
        match event {
            Some(JobEvent::Started { worker, slots }) => {
                self.board.started(&self.job, worker, *slots);
                self.report.queue_wait = Some(self.submitted.elapsed());
            }
            Some(JobEvent::Delta(_) | JobEvent::Embeddings { .. }) => {
                self.uncounted += 1;
                if self.report.first_token.is_none() {
                    self.report.first_token = Some(self.submitted.elapsed());
                }
            }
            Some(JobEvent::Finished { usage, .. }) => {
                self.board.ended(&self.job.id);
                (self.report.usage, self.report.end) = (Some(*usage), JobEnd::Finished);
                self.report.generation = self
                    .report
                    .queue_wait
                    .map(|wait| self.submitted.elapsed().saturating_sub(wait));
            }
            Some(JobEvent::Failed(failure)) => {
                self.board.ended(&self.job.id);
                self.report.end = JobEnd::Failed(failure.status);
            }
            None => {
                self.board.ended(&self.job.id);
                self.report.end = JobEnd::Lost;
            }
        }
    }

    /// Reads the next event, first waiting for the claim where the backend opens events then.
    /// Cancel-safe: a claim that arrives stays in the oneshot until it is read.
    async fn receive(&mut self) -> Option<JobEvent> {
        loop {
            match &mut self.events {
                TicketEvents::Open(events) => return events.recv().await,
                TicketEvents::Ended => return None,
                TicketEvents::OnClaim(claim) => match claim.await {
                    Ok(Ok(claimed)) => {
                        self.running = Some(claimed.cancel);
                        self.events = TicketEvents::Open(claimed.events);
                    }
                    Ok(Err(failure)) => {
                        self.events = TicketEvents::Ended;
                        return Some(JobEvent::Failed(failure));
                    }
                    Err(_) => {
                        self.events = TicketEvents::Ended;
                        return None;
                    }
                },
            }
        }
    }
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        // 1. A running job's worker stops generating, including one whose claim arrived but
        //    was never read.
        if let TicketEvents::OnClaim(claim) = &mut self.events
            && let Ok(Ok(claimed)) = claim.try_recv()
        {
            self.running = Some(claimed.cancel);
        }
        if let Some(running) = self.running.take() {
            running.cancel();
        }
        // 2. A queued job leaves the queue, so it never runs.
        if let Some(leave) = self.leave_queue.0.take() {
            leave();
        }
        // 3. The board forgets it, then 4. statistics learn how it went.
        self.board.ended(&self.job.id);
        if let Some(report) = self.on_end.0.take() {
            report(&self.report);
        }
    }
}

/// A callback run once, from `Drop`.
struct Hook<F: ?Sized>(Option<Box<F>>);

impl<F: ?Sized> std::fmt::Debug for Hook<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Hook(set)"
        } else {
            "Hook"
        })
    }
}
