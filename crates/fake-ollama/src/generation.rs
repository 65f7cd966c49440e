//! One generation holding a scheduler slot: its script played object by object on a fixed
//! schedule, `num_predict` and `stop` applied, the final object's metrics, and the log entries
//! of how it ended.

use std::mem;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::objects::{ChatObject, Message};
use crate::script::{Job, Step, numbered_token};
use crate::state::Shared;

const MID_ERROR: &str = "an error was encountered while running the model";

#[derive(Debug)]
pub(crate) enum Event {
    Object(ChatObject),
    /// The `{"error"}` line of a stream that fails after it started.
    Error(&'static str),
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Running,
    Finished,
    Failed,
}

/// A generation holding a scheduler slot. It lives inside the response body, so a client
/// that hangs up drops it: the slot is freed and `Drop` records the cancellation.
#[derive(Debug)]
pub(crate) struct Generation {
    shared: Arc<Shared>,
    job: Job,
    slot: Option<OwnedSemaphorePermit>,
    outcome: Outcome,
    /// The answer so far, kept only to find stop strings.
    text: String,
    eval_count: u64,
    arrived: Instant,
    started: Instant,
    first_token: Option<Instant>,
    /// When the next object is due. Object `i` is due at `start + first token delay + i × token
    /// delay`, not a delay after the previous one was read, so a slow reader does not stretch
    /// the generation (a real model does not wait for its client either).
    due: Instant,
    token_delay: std::time::Duration,
}

impl Generation {
    pub(crate) fn start(
        shared: Arc<Shared>,
        job: Job,
        slot: OwnedSemaphorePermit,
        arrived: Instant,
    ) -> Self {
        let prompt = job.prompt.clone();
        shared.record(|log| {
            if !log.loaded.iter().any(|m| **m == *job.model) {
                log.loaded.push(job.model.to_string());
            }
            log.running += 1;
            log.max_concurrent = log.max_concurrent.max(log.running);
        });
        shared.note(|log| &mut log.started, prompt);
        let (first_token_delay, token_delay) = shared.timing.get();
        let started = Instant::now();
        Self {
            token_delay: token_delay.max(job.min_token_delay),
            shared,
            job,
            slot: Some(slot),
            outcome: Outcome::Running,
            text: String::new(),
            eval_count: 0,
            arrived,
            started,
            first_token: None,
            due: started + first_token_delay,
        }
    }

    /// The next object to send, when it is due; `None` once the answer is over.
    pub(crate) async fn next(&mut self) -> Option<Event> {
        if self.outcome != Outcome::Running {
            return None;
        }
        // The final object follows the last token at once, as Ollama's does. Skipping the
        // timer when the object is already due keeps fast answers cheap.
        let finishing = self.first_token.is_some() && self.job.steps.is_empty();
        let due = self.due;
        let wait = !finishing && Instant::now() < due;
        if (wait && !self.unless_stopped(tokio::time::sleep_until(due)).await)
            || self.shared.shutdown.is_cancelled()
        {
            return Some(self.fail(Event::Abort));
        }
        self.first_token.get_or_insert_with(Instant::now);
        loop {
            let Some(step) = self.job.steps.pop_front() else {
                return Some(self.done("stop", Message::new("", "", Vec::new())));
            };
            let message = match step {
                Step::Emit(message) => message,
                Step::Count { next, total } => {
                    if next >= total {
                        continue;
                    }
                    if next + 1 < total {
                        let rest = Step::Count {
                            next: next + 1,
                            total,
                        };
                        self.job.steps.push_front(rest);
                    }
                    Message::text(numbered_token(next))
                }
                Step::Hold => {
                    let holds = &self.shared.holds;
                    // `release` closes the gate: the failed acquire also means "go on".
                    let go_on = async { holds.acquire().await.map(|p| p.forget()).unwrap_or(()) };
                    if !self.unless_stopped(go_on).await {
                        return Some(self.fail(Event::Abort));
                    }
                    // The schedule resumes from the release, without a burst to catch up.
                    self.due = Instant::now();
                    continue;
                }
                Step::MidError => return Some(self.fail(Event::Error(MID_ERROR))),
                Step::Abort => return Some(self.fail(Event::Abort)),
            };
            self.due += self.token_delay;
            if !message.content.is_empty() {
                if self
                    .job
                    .num_predict
                    .is_some_and(|n| n > 0 && self.eval_count >= n)
                {
                    return Some(self.done("length", Message::new("", "", Vec::new())));
                }
                if self.hits_stop(&message.content) {
                    return Some(self.done("stop", Message::new("", "", Vec::new())));
                }
                self.eval_count += 1;
            }
            if self.job.last_in_done && self.job.steps.is_empty() {
                return Some(self.done("stop", message));
            }
            return Some(Event::Object(ChatObject::new(&self.job.model, message)));
        }
    }

    /// Whether the answer so far plus `content` contains a stop string. Only the end where a
    /// stop string can newly appear is searched, so long answers stay linear.
    fn hits_stop(&mut self, content: &str) -> bool {
        if self.job.stop.is_empty() {
            return false;
        }
        let before = self.text.len();
        self.text.push_str(content);
        let text = self.text.as_bytes();
        self.job.stop.iter().any(|stop| {
            let from = before.saturating_sub(stop.len());
            text[from..]
                .windows(stop.len())
                .any(|window| window == stop.as_bytes())
        })
    }

    /// Runs `work` unless `stop` comes first: a killed Ollama produces nothing more.
    async fn unless_stopped(&self, work: impl Future<Output = ()>) -> bool {
        tokio::select! {
            () = work => true,
            () = self.shared.shutdown.cancelled() => false,
        }
    }

    fn fail(&mut self, event: Event) -> Event {
        self.outcome = Outcome::Failed;
        event
    }

    fn done(&mut self, reason: &'static str, message: Message) -> Event {
        self.outcome = Outcome::Finished;
        self.shared
            .note(|log| &mut log.finished, self.job.prompt.clone());
        let now = Instant::now();
        let first_token = self.first_token.unwrap_or(now);
        // Never 0, so the durations are always present, as on a real server.
        let nanos = |from: Instant, to: Instant| {
            u64::try_from(to.duration_since(from).as_nanos())
                .unwrap_or(u64::MAX)
                .max(1)
        };
        let load = nanos(self.arrived, self.started);
        let prompt_eval = nanos(self.started, first_token);
        let eval = nanos(first_token, now);
        Event::Object(ChatObject {
            done: true,
            done_reason: Some(reason),
            total_duration: nanos(self.arrived, now).max(load + prompt_eval + eval),
            load_duration: load,
            prompt_eval_count: self.job.prompt_eval_count,
            prompt_eval_duration: prompt_eval,
            eval_count: self.eval_count,
            eval_duration: eval,
            ..ChatObject::new(&self.job.model, message)
        })
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        // Free the slot before anyone woken by the log can ask for it.
        drop(self.slot.take());
        self.shared.record(|log| log.running -= 1);
        if self.outcome == Outcome::Running {
            let prompt = mem::take(&mut self.job.prompt);
            self.shared.note(|log| &mut log.cancelled, prompt);
        }
    }
}
