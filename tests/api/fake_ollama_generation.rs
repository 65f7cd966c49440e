//! The fake's generations: waiting for one of Ollama's scheduler slots, the NDJSON objects in
//! Ollama's field order, and the streamed or aggregated answer whose body owns the slot.

use super::*;

pub(super) async fn chat(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let arrived = Instant::now();
    let parsed = parse_body(&body);
    // Recorded before validation so tests can inspect exactly what the gateway sent.
    let seen = match &parsed {
        Ok(value) => value.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    shared.record(|log| log.chat_requests.push(seen));
    let job = prepare(&shared, decode(&parsed?)?)?;
    let slot = match acquire_slot(&shared).await {
        Ok(slot) => slot,
        Err(response) => return Ok(response),
    };
    if let Some(reason) = job.load_only {
        let reply = ChatObject::new(&job.model, Message::new("", "", Vec::new()));
        let reply = ChatObject {
            done: true,
            done_reason: Some(reason),
            ..reply
        };
        return Ok(json_body(StatusCode::OK, &reply));
    }
    let stream = job.stream;
    let generation = Generation::start(shared, job, slot, arrived);
    Ok(if stream {
        stream_response(generation).await
    } else {
        aggregate(generation).await
    })
}

/// Waits for a scheduler slot like `server/sched.go`: unbounded in time, bounded in number.
pub(super) async fn acquire_slot(shared: &Shared) -> Result<OwnedSemaphorePermit, Response> {
    if let Ok(slot) = Arc::clone(&shared.slots).try_acquire_owned() {
        return Ok(slot);
    }
    let admitted = shared.record(|log| {
        let admitted = log.queued < shared.config.max_queue;
        log.queued += usize::from(admitted);
        admitted
    });
    if !admitted {
        return Err(Refusal(StatusCode::SERVICE_UNAVAILABLE, BUSY.to_owned()).into_response());
    }
    // Leaves the queue on every path, including a client that hangs up while waiting.
    let _ticket = QueueTicket(shared);
    tokio::select! {
        slot = Arc::clone(&shared.slots).acquire_owned() => slot.map_err(|_| abort_response()),
        () = shared.shutdown.cancelled() => Err(abort_response()),
    }
}

pub(super) struct QueueTicket<'a>(&'a Shared);

impl Drop for QueueTicket<'_> {
    fn drop(&mut self) {
        self.0.record(|log| log.queued -= 1);
    }
}

/// One `api.ChatResponse`, fields in Ollama's order; zero metrics are absent (`omitempty`).
#[derive(Debug, Default, Serialize)]
pub(super) struct ChatObject {
    pub(super) model: String,
    pub(super) created_at: String,
    pub(super) message: Message,
    pub(super) done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) done_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) total_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) load_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) prompt_eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) prompt_eval_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) eval_duration: u64,
}

impl ChatObject {
    pub(super) fn new(model: &str, message: Message) -> Self {
        let created_at = rfc3339_nano(SystemTime::now());
        Self {
            model: model.to_owned(),
            created_at,
            message,
            ..Self::default()
        }
    }
}

pub(super) fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Message {
    pub(super) role: &'static str,
    pub(super) content: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(super) thinking: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tool_calls: Vec<ToolCall>,
}

impl Message {
    pub(super) fn new(content: &str, thinking: &str, tool_calls: Vec<ToolCall>) -> Self {
        let (content, thinking) = (content.to_owned(), thinking.to_owned());
        Self {
            role: "assistant",
            content,
            thinking,
            tool_calls,
        }
    }
}

/// A whole call in one object, with `arguments` as an object.
#[derive(Debug, Serialize)]
pub(super) struct ToolCall {
    pub(super) id: String,
    pub(super) function: ToolFunction,
}

#[derive(Debug, Serialize)]
pub(super) struct ToolFunction {
    pub(super) index: usize,
    pub(super) name: String,
    pub(super) arguments: Value,
}

impl ToolCall {
    /// Always `index: 0`, so `#tools2` reproduces the repeat bug of several Ollama parsers.
    pub(super) fn new(name: &str, city: &str) -> Self {
        // `call_` plus 8 characters of `[a-z0-9]`, like Ollama since v0.12.10.
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let pick = |_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]);
        let id = format!("call_{}", (0..8).map(pick).collect::<String>());
        let (name, arguments) = (name.to_owned(), json!({"city": city}));
        Self {
            id,
            function: ToolFunction {
                index: 0,
                name,
                arguments,
            },
        }
    }
}

#[derive(Debug)]
pub(super) enum Event {
    Object(ChatObject),
    /// The `{"error"}` line of a stream that fails after it started.
    Error(&'static str),
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Outcome {
    Running,
    Finished,
    Failed,
}

/// A generation holding a scheduler slot. It lives inside the response body, so a client
/// that hangs up drops it: the slot is freed and `Drop` records the cancellation.
#[derive(Debug)]
pub(super) struct Generation {
    pub(super) shared: Arc<Shared>,
    pub(super) job: Job,
    pub(super) slot: Option<OwnedSemaphorePermit>,
    pub(super) outcome: Outcome,
    pub(super) text: String,
    pub(super) eval_count: u64,
    pub(super) arrived: Instant,
    pub(super) started: Instant,
    pub(super) first_token: Option<Instant>,
}

impl Generation {
    pub(super) fn start(
        shared: Arc<Shared>,
        job: Job,
        slot: OwnedSemaphorePermit,
        arrived: Instant,
    ) -> Self {
        shared.record(|log| {
            log.started.push(job.prompt.clone());
            if !log.loaded.contains(&job.model) {
                log.loaded.push(job.model.clone());
            }
            log.running += 1;
            log.max_concurrent = log.max_concurrent.max(log.running);
        });
        let (text, eval_count, started, outcome) =
            (String::new(), 0, Instant::now(), Outcome::Running);
        Self {
            shared,
            job,
            slot: Some(slot),
            outcome,
            text,
            eval_count,
            arrived,
            started,
            first_token: None,
        }
    }

    /// The next object to send, after the configured delay; `None` once the answer is over.
    pub(super) async fn next(&mut self) -> Option<Event> {
        if self.outcome != Outcome::Running {
            return None;
        }
        let delay = match self.first_token {
            Some(_) => self.job.token_delay,
            None => self.shared.config.first_token_delay,
        };
        if !self.unless_stopped(tokio::time::sleep(delay)).await {
            return Some(self.fail(Event::Abort));
        }
        self.first_token.get_or_insert_with(Instant::now);
        loop {
            let Some(step) = self.job.steps.pop_front() else {
                return Some(self.done("stop", Message::new("", "", Vec::new())));
            };
            let message = match step {
                Step::Emit(message) => message,
                Step::Hold => {
                    let holds = &self.shared.holds;
                    // `release` closes the gate: the failed acquire also means "go on".
                    let go_on = async { holds.acquire().await.map(|p| p.forget()).unwrap_or(()) };
                    if !self.unless_stopped(go_on).await {
                        return Some(self.fail(Event::Abort));
                    }
                    continue;
                }
                Step::MidError => return Some(self.fail(Event::Error(MID_ERROR))),
                Step::Abort => return Some(self.fail(Event::Abort)),
            };
            if !message.content.is_empty() {
                if self
                    .job
                    .num_predict
                    .is_some_and(|n| n > 0 && self.eval_count >= n)
                {
                    return Some(self.done("length", Message::new("", "", Vec::new())));
                }
                let text = format!("{}{}", self.text, message.content);
                if self
                    .job
                    .stop
                    .iter()
                    .any(|stop| text.contains(stop.as_str()))
                {
                    return Some(self.done("stop", Message::new("", "", Vec::new())));
                }
                (self.text, self.eval_count) = (text, self.eval_count + 1);
            }
            if self.job.last_in_done && self.job.steps.is_empty() {
                return Some(self.done("stop", message));
            }
            return Some(Event::Object(ChatObject::new(&self.job.model, message)));
        }
    }

    /// Runs `work` unless `stop` comes first: a killed Ollama produces nothing more.
    pub(super) async fn unless_stopped(&self, work: impl Future<Output = ()>) -> bool {
        tokio::select! {
            () = work => true,
            () = self.shared.shutdown.cancelled() => false,
        }
    }

    pub(super) fn fail(&mut self, event: Event) -> Event {
        self.outcome = Outcome::Failed;
        event
    }

    pub(super) fn done(&mut self, reason: &'static str, message: Message) -> Event {
        self.outcome = Outcome::Finished;
        let prompt = self.job.prompt.clone();
        self.shared.record(|log| log.finished.push(prompt));
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
        let cancelled = self.outcome == Outcome::Running;
        let prompt = mem::take(&mut self.job.prompt);
        self.shared.record(|log| {
            log.running -= 1;
            if cancelled {
                log.cancelled.push(prompt);
            }
        });
    }
}

pub(super) async fn stream_response(mut generation: Generation) -> Response {
    // gin writes the status line and headers together with the first object, not before.
    let first = generation.next().await;
    let rest = stream::unfold(generation, |mut generation| async move {
        generation.next().await.map(|event| (event, generation))
    });
    let body = stream::iter(first).chain(rest).map(|event| match event {
        Event::Object(object) => Ok(ndjson(&object)),
        Event::Error(message) => Ok(ndjson(&json!({"error": message}))),
        // A body error makes hyper drop the connection without the final empty chunk.
        Event::Abort => Err(io::Error::other("fake Ollama cut the connection")),
    });
    respond(StatusCode::OK, NDJSON, Body::from_stream(body))
}

/// `stream:false`: the final object, carrying everything the stream would have sent.
pub(super) async fn aggregate(mut generation: Generation) -> Response {
    let mut whole = Message::new("", "", Vec::new());
    while let Some(event) = generation.next().await {
        match event {
            Event::Object(mut object) => {
                let part = mem::take(&mut object.message);
                whole.content.push_str(&part.content);
                whole.thinking.push_str(&part.thinking);
                whole.tool_calls.extend(part.tool_calls);
                if object.done {
                    object.message = whole;
                    return json_body(StatusCode::OK, &object);
                }
            }
            Event::Error(message) => {
                return Refusal(StatusCode::INTERNAL_SERVER_ERROR, message.to_owned())
                    .into_response();
            }
            Event::Abort => break,
        }
    }
    abort_response()
}
