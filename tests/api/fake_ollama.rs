//! A fake Ollama server (native API of v0.33) for Seadragon's integration tests.
//!
//! It reproduces Ollama's native wire formats (API types, chat streaming, errors):
//! NDJSON streams whose headers only leave with the first object, one final `done:true`
//! object whose zero metrics are omitted, `{"error":"..."}` bodies with Ollama's status codes
//! and messages, gin's text 404/405, and Ollama's scheduler (`parallel` slots plus a bounded
//! queue that answers 503 when full). The first word of the last user message picks a
//! scripted scenario (`#tool`, `#hold`, `#abrupt`, ... see `prepare`) so that tests can
//! provoke each edge case of the protocol, and the fake records what it received and how
//! each generation ended.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{StreamExt, stream};
use rand::RngExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[path = "fake_ollama_ide.rs"]
mod ide;

const DEFAULT_ANSWER: &[&str] = &["Hello", " from", " the", " fake", " Ollama."];
const JSON_ANSWER: &[&str] = &["{\"answer\":", " \"fake\"}"];
const THOUGHTS: &[&str] = &["Let", " me", " think."];
const BUSY: &str = "server busy, please try again.  maximum pending requests exceeded";
const CRASH: &str = "model runner has unexpectedly stopped, this may be due to resource \
                     limitations or an internal error, check ollama server logs for details";
const MID_ERROR: &str = "an error was encountered while running the model";
/// `modified_at` carries the server's local offset, unlike the UTC `created_at` of chat objects.
const MODIFIED_AT: &str = "2025-05-04T17:37:44.706015396-07:00";
/// `#slow` must leave the client time to hang up while the generation is still running.
const SLOW_MIN_DELAY: Duration = Duration::from_millis(10);
const NDJSON: &str = "application/x-ndjson";
/// gin's `c.JSON`, used for every non-streamed answer and every error.
const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One installed model, as `/api/tags` and `/api/show` describe it.
#[derive(Debug, Clone)]
pub struct FakeModel {
    pub name: String,
    /// Ollama's capability names: `completion`, `tools`, `thinking`, `vision`, `embedding`.
    pub capabilities: Vec<String>,
    pub family: String,
    pub parameter_size: String,
    pub quantization_level: String,
    pub context_length: u64,
}

impl FakeModel {
    pub fn new(name: &str, capabilities: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            family: "llama".to_owned(),
            parameter_size: "8.0B".to_owned(),
            quantization_level: "Q4_K_M".to_owned(),
            context_length: 8192,
        }
    }

    fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    fn details(&self) -> Value {
        json!({"parent_model": "", "format": "gguf", "family": self.family,
               "families": [self.family], "parameter_size": self.parameter_size,
               "quantization_level": self.quantization_level})
    }

    /// Clients treat the digest as the model's identity, so it depends on the name alone.
    fn hash(&self, salt: u8) -> u64 {
        let mut hasher = DefaultHasher::new();
        (salt, &self.name).hash(&mut hasher);
        hasher.finish()
    }

    fn tags_entry(&self) -> Value {
        let digest: String = (0..4).map(|i| format!("{:016x}", self.hash(i))).collect();
        json!({"name": self.name, "model": self.name, "modified_at": MODIFIED_AT,
               "size": 1_000_000_000 + self.hash(4) % 4_000_000_000, "digest": digest,
               "details": self.details()})
    }
}

/// How the fake behaves; `Default` gives one model per capability mix a gateway cares about.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub models: Vec<FakeModel>,
    /// `OLLAMA_NUM_PARALLEL`: generations that may run at once.
    pub parallel: usize,
    /// `OLLAMA_MAX_QUEUE`: requests that may wait for a slot; one more gets a 503.
    pub max_queue: usize,
    /// Model load plus prompt processing: nothing, not even headers, is sent meanwhile.
    pub first_token_delay: Duration,
    pub token_delay: Duration,
    /// What `/api/version` reports.
    pub version: &'static str,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            models: vec![
                FakeModel::new("llama3.2:latest", &["completion", "tools"]),
                FakeModel::new("qwen3:8b", &["completion", "tools", "thinking"]),
                FakeModel::new("llava:7b", &["completion", "vision"]),
                FakeModel::new("all-minilm:latest", &["embedding"]),
            ],
            parallel: 1,
            max_queue: 512,
            first_token_delay: Duration::ZERO,
            token_delay: Duration::from_millis(1),
            version: "0.33.0",
        }
    }
}

/// What the fake saw and did; the lists hold prompts (last user message) in event order.
#[derive(Debug, Default)]
struct Log {
    chat_requests: Vec<Value>,
    /// `/api/generate` and `/api/embed` bodies, in arrival order.
    generate_requests: Vec<Value>,
    embed_requests: Vec<Value>,
    /// Models that generated or embedded, for `/api/ps`.
    loaded: Vec<String>,
    started: Vec<String>,
    finished: Vec<String>,
    cancelled: Vec<String>,
    running: usize,
    max_concurrent: usize,
    queued: usize,
}

#[derive(Debug)]
struct Shared {
    config: FakeConfig,
    /// Ollama's scheduler slots; a generation holds one until it ends or its client leaves.
    slots: Arc<Semaphore>,
    /// Gate for `#hold`: `release_one` adds a permit, `release` closes it for good.
    holds: Semaphore,
    log: Mutex<Log>,
    /// Bumped after every change to `log`, so tests can await a condition without polling.
    changed: watch::Sender<()>,
    /// Cancelled by `stop`: the listener closes and every running generation aborts.
    shutdown: CancellationToken,
}

impl Shared {
    fn record<R>(&self, change: impl FnOnce(&mut Log) -> R) -> R {
        let result = change(&mut self.log.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.send_replace(());
        result
    }

    fn read<R>(&self, query: impl FnOnce(&Log) -> R) -> R {
        query(&self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn wait_until(&self, condition: impl Fn(&Log) -> bool) {
        // `self.changed` lives as long as `self`, so the channel cannot close under us.
        let _ = self
            .changed
            .subscribe()
            .wait_for(|()| self.read(&condition))
            .await;
    }

    /// Finds a model by its installed name, or by that name without `:latest`.
    fn model(&self, name: &str) -> Option<&FakeModel> {
        let tagged = with_tag(name);
        self.config
            .models
            .iter()
            .find(|m| m.name == name || m.name == tagged)
    }
}

/// A fake Ollama on `127.0.0.1`; it serves until [`FakeOllama::stop`] or the runtime ends.
#[derive(Debug)]
pub struct FakeOllama {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeOllama {
    #[allow(
        clippy::expect_used,
        reason = "test support: a fake that cannot listen fails the test"
    )]
    pub async fn start(config: FakeConfig) -> FakeOllama {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Ollama");
        let addr = listener
            .local_addr()
            .expect("read the fake Ollama's address");
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(config.parallel.max(1))),
            holds: Semaphore::new(0),
            log: Mutex::default(),
            changed: watch::Sender::new(()),
            shutdown: CancellationToken::new(),
            config,
        });
        let app = router(Arc::clone(&shared));
        let shutdown = shared.shutdown.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            // An accept error ends the fake like a dead Ollama: connections are then refused.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        FakeOllama {
            shared,
            addr,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `/api/chat` body in arrival order, invalid ones included (unparsable as strings).
    pub fn chat_requests(&self) -> Vec<Value> {
        self.shared.read(|log| log.chat_requests.clone())
    }

    /// Prompts of the generations that got a slot, in the order they got it.
    pub fn started(&self) -> Vec<String> {
        self.shared.read(|log| log.started.clone())
    }

    pub async fn wait_started(&self, n: usize) {
        self.shared.wait_until(|log| log.started.len() >= n).await;
    }

    /// Prompts of the generations that produced their `done:true` object.
    pub fn finished(&self) -> Vec<String> {
        self.shared.read(|log| log.finished.clone())
    }

    /// Prompts of the generations whose client went away before the end.
    pub fn cancelled(&self) -> Vec<String> {
        self.shared.read(|log| log.cancelled.clone())
    }

    pub async fn wait_cancelled(&self, n: usize) {
        self.shared.wait_until(|log| log.cancelled.len() >= n).await;
    }

    pub fn max_concurrent(&self) -> usize {
        self.shared.read(|log| log.max_concurrent)
    }

    /// Lets every `#hold` generation, current and future, go on.
    pub fn release(&self) {
        self.shared.holds.close();
    }

    /// Stops like a killed Ollama: the port refuses connections and open streams are cut.
    pub async fn stop(&mut self) {
        self.shared.shutdown.cancel();
        // Generations abort on the same token, so the graceful shutdown (which also closes
        // idle keep-alive connections) ends at once; the timeout only guards a broken test.
        if tokio::time::timeout(Duration::from_secs(5), &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let reported = json!({ "version": shared.config.version }).to_string();
    let version = move || {
        let reported = reported.clone();
        async move { respond(StatusCode::OK, JSON, reported) }
    };
    let not_found = || async { respond(StatusCode::NOT_FOUND, TEXT, "404 page not found") };
    let bad_method = || async {
        respond(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "405 method not allowed",
        )
    };
    Router::new()
        .route(
            "/",
            get(|| async { respond(StatusCode::OK, TEXT, "Ollama is running") }),
        )
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(ide::generate))
        .route("/api/embed", post(ide::embed))
        .route("/api/ps", get(ide::ps))
        .fallback(not_found)
        .method_not_allowed_fallback(bad_method)
        // Ollama takes base64 images of any size.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn tags(State(shared): State<Arc<Shared>>) -> Response {
    let models = shared.config.models.iter().map(FakeModel::tags_entry);
    json_body(
        StatusCode::OK,
        &json!({"models": models.collect::<Vec<_>>()}),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShowRequest {
    model: Option<String>,
    /// The legacy spelling of `model`.
    name: Option<String>,
}

async fn show(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, Refusal> {
    let request: ShowRequest = decode(&parse_body(&body)?)?;
    let name = request
        .model
        .filter(|n| !n.is_empty())
        .or(request.name)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(bad_request("model is required"));
    }
    // Unlike chat, show reports the name normalised with its tag.
    let missing = format!("model '{}' not found", with_tag(&name));
    let model = shared
        .model(&name)
        .ok_or(Refusal(StatusCode::NOT_FOUND, missing))?;
    let mut model_info = Map::new();
    model_info.insert("general.architecture".to_owned(), json!(model.family));
    let context_key = format!("{}.context_length", model.family);
    model_info.insert(context_key, json!(model.context_length));
    model_info.insert("general.basename".to_owned(), json!(model.family));
    let show = json!({"license": "", "modelfile": format!("FROM {}\n", model.name),
                      "parameters": "stop                           \"<|eot_id|>\"",
                      "template": ide::template(model), "details": model.details(),
                      "model_info": model_info, "capabilities": model.capabilities,
                      "modified_at": MODIFIED_AT});
    Ok(json_body(StatusCode::OK, &show))
}

async fn chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, Refusal> {
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
async fn acquire_slot(shared: &Shared) -> Result<OwnedSemaphorePermit, Response> {
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

struct QueueTicket<'a>(&'a Shared);

impl Drop for QueueTicket<'_> {
    fn drop(&mut self) {
        self.0.record(|log| log.queued -= 1);
    }
}

/// The fields of `api.ChatRequest` the fake uses; like Go, it ignores unknown ones.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatRequest {
    model: Option<String>,
    messages: Vec<ChatMessage>,
    tools: Vec<Value>,
    /// Absent or null means true.
    stream: Option<bool>,
    think: Option<Value>,
    format: Option<Value>,
    keep_alive: Option<Value>,
    /// `map[string]any` in Ollama too: unknown and oddly typed options are ignored here.
    options: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatMessage {
    role: String,
    content: Option<String>,
}

/// One step of a scripted answer.
#[derive(Debug)]
enum Step {
    /// One object; its content, if any, counts as a token for `num_predict` and `stop`.
    Emit(Message),
    /// Waits for `release`/`release_one`, sending nothing.
    Hold,
    /// Ends a 200 stream with an `{"error"}` line and no `done:true` object.
    MidError,
    /// Cuts the connection in the middle of the chunked body.
    Abort,
}

/// A validated chat request turned into a script.
#[derive(Debug)]
struct Job {
    /// The model name exactly as requested: Ollama echoes it back.
    model: String,
    prompt: String,
    stream: bool,
    steps: VecDeque<Step>,
    /// The last step rides in the `done:true` object instead of its own.
    last_in_done: bool,
    prompt_eval_count: u64,
    num_predict: Option<u64>,
    stop: Vec<String>,
    token_delay: Duration,
    /// `messages: []` only loads (or, with `keep_alive: 0`, unloads) the model.
    load_only: Option<&'static str>,
}

/// Validates a chat request in Ollama's order, then picks the scenario named by the first
/// word of the last user message (any other prompt gets the default answer).
fn prepare(shared: &Shared, request: ChatRequest) -> Result<Job, Refusal> {
    let name = request.model.unwrap_or_default();
    if name.is_empty() {
        return Err(bad_request("model is required"));
    }
    let missing = || Refusal(StatusCode::NOT_FOUND, format!("model '{name}' not found"));
    let model = shared.model(&name).ok_or_else(missing)?;
    if !model.has("completion") {
        return Err(bad_request(format!("\"{name}\" does not support chat")));
    }
    if !request.tools.is_empty() && !model.has("tools") {
        return Err(bad_request(format!("{name} does not support tools")));
    }
    let think = match request.think {
        None | Some(Value::Null) => None,
        Some(Value::Bool(think)) => Some(think),
        Some(Value::String(level)) if ["low", "medium", "high", "max"].contains(&&*level) => {
            Some(true)
        }
        Some(other) => return Err(bad_request(format!("invalid think value: {other}"))),
    };
    if think == Some(true) && !model.has("thinking") {
        return Err(bad_request(format!("\"{name}\" does not support thinking")));
    }
    let answer = match request.format {
        None | Some(Value::Null) => DEFAULT_ANSWER,
        Some(Value::String(format)) if format.is_empty() => DEFAULT_ANSWER,
        Some(Value::String(format)) if format == "json" => JSON_ANSWER,
        Some(Value::Object(_)) => JSON_ANSWER,
        Some(other) => {
            let expected = "expected \"json\" or a valid JSON Schema object";
            return Err(bad_request(format!("invalid format: {other}; {expected}")));
        }
    };
    let content = |m: &ChatMessage| m.content.clone().unwrap_or_default();
    let is_user = |m: &&ChatMessage| m.role.eq_ignore_ascii_case("user");
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(is_user)
        .map(content)
        .unwrap_or_default();
    let words = request
        .messages
        .iter()
        .map(|m| content(m).split_whitespace().count());
    let tool_name = request
        .tools
        .first()
        .and_then(|t| t.pointer("/function/name"));
    let tool_name = tool_name.and_then(Value::as_str).unwrap_or("get_weather");
    let call = |city| Step::Emit(Message::new("", "", vec![ToolCall::new(tool_name, city)]));
    let option = |key| request.options.get(key);
    let stop = option("stop")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let mut job = Job {
        model: name.clone(),
        prompt: prompt.clone(),
        stream: request.stream.unwrap_or(true),
        steps: VecDeque::new(),
        last_in_done: false,
        prompt_eval_count: u64::try_from(words.sum::<usize>()).unwrap_or(u64::MAX),
        num_predict: option("num_predict").and_then(Value::as_u64),
        stop: stop
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Into::into)
            .collect(),
        token_delay: shared.config.token_delay,
        load_only: None,
    };
    if request.messages.is_empty() {
        let unload = matches!(request.keep_alive, Some(v) if v == 0 || v == "0" || v == "0s");
        job.load_only = Some(if unload { "unload" } else { "load" });
    }
    let mut words = prompt.split_whitespace();
    job.steps = match words.next().unwrap_or_default() {
        "#crash" => return Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, CRASH.to_owned())),
        "#busy" => return Err(Refusal(StatusCode::SERVICE_UNAVAILABLE, BUSY.to_owned())),
        "#think" if model.has("thinking") && think != Some(false) => {
            let thoughts = THOUGHTS
                .iter()
                .map(|t| Step::Emit(Message::new("", t, Vec::new())));
            thoughts.chain(tokens(answer)).collect()
        }
        "#tool" => [call("Tokyo")].into(),
        // Two objects, both with index 0.
        "#tools2" => [call("Tokyo"), call("Paris")].into(),
        "#tool-final" => {
            job.last_in_done = true;
            [call("Tokyo")].into()
        }
        "#final-content" => {
            (job.last_in_done, job.prompt_eval_count) = (true, 0);
            tokens(&["Hello", " there", " friend."]).collect()
        }
        "#mid-error" => tokens(&answer[..2]).chain([Step::MidError]).collect(),
        "#abrupt" => tokens(&answer[..2]).chain([Step::Abort]).collect(),
        "#hold" => tokens(&answer[..1])
            .chain([Step::Hold])
            .chain(tokens(&answer[1..]))
            .collect(),
        "#slow" => {
            job.token_delay = job.token_delay.max(SLOW_MIN_DELAY);
            numbered(2000)
        }
        "#long" => numbered(words.next().and_then(|n| n.parse().ok()).unwrap_or(100)),
        _ => tokens(answer).collect(),
    };
    Ok(job)
}

fn tokens(text: &'static [&'static str]) -> impl Iterator<Item = Step> {
    text.iter()
        .map(|t| Step::Emit(Message::new(t, "", Vec::new())))
}

/// `tok0`, ` tok1`, ...
fn numbered(n: usize) -> VecDeque<Step> {
    let token = |i| {
        if i == 0 {
            "tok0".to_owned()
        } else {
            format!(" tok{i}")
        }
    };
    (0..n)
        .map(|i| Step::Emit(Message::new(&token(i), "", Vec::new())))
        .collect()
}

/// One `api.ChatResponse`, fields in Ollama's order; zero metrics are absent (`omitempty`).
#[derive(Debug, Default, Serialize)]
struct ChatObject {
    model: String,
    created_at: String,
    message: Message,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    total_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    load_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    prompt_eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    prompt_eval_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    eval_duration: u64,
}

impl ChatObject {
    fn new(model: &str, message: Message) -> Self {
        let created_at = rfc3339_nano(SystemTime::now());
        Self {
            model: model.to_owned(),
            created_at,
            message,
            ..Self::default()
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Default, Serialize)]
struct Message {
    role: &'static str,
    content: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thinking: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall>,
}

impl Message {
    fn new(content: &str, thinking: &str, tool_calls: Vec<ToolCall>) -> Self {
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
struct ToolCall {
    id: String,
    function: ToolFunction,
}

#[derive(Debug, Serialize)]
struct ToolFunction {
    index: usize,
    name: String,
    arguments: Value,
}

impl ToolCall {
    /// Always `index: 0`, so `#tools2` reproduces the repeat bug of several Ollama parsers.
    fn new(name: &str, city: &str) -> Self {
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
enum Event {
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
struct Generation {
    shared: Arc<Shared>,
    job: Job,
    slot: Option<OwnedSemaphorePermit>,
    outcome: Outcome,
    text: String,
    eval_count: u64,
    arrived: Instant,
    started: Instant,
    first_token: Option<Instant>,
}

impl Generation {
    fn start(shared: Arc<Shared>, job: Job, slot: OwnedSemaphorePermit, arrived: Instant) -> Self {
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
    async fn next(&mut self) -> Option<Event> {
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

async fn stream_response(mut generation: Generation) -> Response {
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
async fn aggregate(mut generation: Generation) -> Response {
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

/// A response whose body fails at once, so hyper closes the connection without an answer.
fn abort_response() -> Response {
    let failure = io::Error::other("fake Ollama dropped the connection");
    Body::from_stream(stream::once(async { Err::<Bytes, _>(failure) })).into_response()
}

/// An `{"error":"..."}` answer, sent before any byte of a stream.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_body(self.0, &json!({"error": self.1}))
    }
}

fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}

/// gin reads the body with `encoding/json` whatever its Content-Type says.
fn parse_body(body: &[u8]) -> Result<Value, Refusal> {
    if body.is_empty() {
        return Err(bad_request("missing request body"));
    }
    serde_json::from_slice(body).map_err(|error| bad_request(error.to_string()))
}

/// Typed like Go's decoder: a wrongly typed field is a 400 (with serde's wording, not Go's).
fn decode<T: DeserializeOwned + Default>(body: &Value) -> Result<T, Refusal> {
    if body.is_null() {
        // Go decodes `null` into a struct as a no-op.
        return Ok(T::default());
    }
    T::deserialize(body).map_err(|error| bad_request(error.to_string()))
}

/// The name with `:latest` added when it has no tag (a `:` after the last `/`).
fn with_tag(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: impl IntoResponse) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// gin's `c.JSON`: compact, without a trailing newline.
fn json_body(status: StatusCode, value: &impl Serialize) -> Response {
    respond(
        status,
        JSON,
        serde_json::to_string(value).unwrap_or_default(),
    )
}

fn ndjson(value: &impl Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Go's RFC3339Nano in UTC: trailing zeros of the fraction trimmed, e.g. `...24.097767Z`.
fn rfc3339_nano(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs() % 86_400;
    // Howard Hinnant's days-to-civil algorithm, shifted to eras starting on 0000-03-01.
    let z = since_epoch.as_secs() / 86_400 + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let fraction = format!(".{:09}", since_epoch.subsec_nanos());
    let fraction = fraction.trim_end_matches('0').trim_end_matches('.');
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{fraction}Z")
}
