//! The fake's scripts: a chat request validated in Ollama's order, and the scenario its last
//! user message names (`#tool`, `#hold`, `#long N`, ...; any other prompt gets a short answer).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::objects::{Message, ToolCall};
use crate::state::Shared;
use crate::wire::{Refusal, bad_request};

pub(crate) const DEFAULT_ANSWER: &[&str] = &["Hello", " from", " the", " fake", " Ollama."];
const JSON_ANSWER: &[&str] = &["{\"answer\":", " \"fake\"}"];
const THOUGHTS: &[&str] = &["Let", " me", " think."];
pub(crate) const BUSY: &str = "server busy, please try again.  maximum pending requests exceeded";
const CRASH: &str = "model runner has unexpectedly stopped, this may be due to resource \
                     limitations or an internal error, check ollama server logs for details";
/// `#slow` must leave the client time to hang up while the generation is still running.
const SLOW_MIN_DELAY: Duration = Duration::from_millis(10);

/// The fields of `api.ChatRequest` the fake uses; like Go, it ignores unknown ones.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChatRequest {
    pub(crate) model: Option<String>,
    pub(crate) messages: Vec<ChatMessage>,
    pub(crate) tools: Vec<Value>,
    /// Absent or null means true.
    pub(crate) stream: Option<bool>,
    pub(crate) think: Option<Value>,
    pub(crate) format: Option<Value>,
    pub(crate) keep_alive: Option<Value>,
    /// `map[string]any` in Ollama too: unknown and oddly typed options are ignored here.
    pub(crate) options: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChatMessage {
    pub(crate) role: String,
    pub(crate) content: Option<String>,
}

/// One step of a scripted answer.
#[derive(Debug)]
pub(crate) enum Step {
    /// One object; its content, if any, counts as a token for `num_predict` and `stop`.
    Emit(Message),
    /// Tokens `next..total` of [`numbered_text`], one object each, made as they are sent so
    /// that `#long 5000000` costs no memory up front.
    Count { next: usize, total: usize },
    /// Waits for `release`/`release_one`, sending nothing.
    Hold,
    /// Ends a 200 stream with an `{"error"}` line and no `done:true` object.
    MidError,
    /// Cuts the connection in the middle of the chunked body.
    Abort,
}

/// A validated chat request turned into a script.
#[derive(Debug)]
pub(crate) struct Job {
    /// The model name exactly as requested: Ollama echoes it back.
    pub(crate) model: Arc<str>,
    pub(crate) prompt: String,
    pub(crate) stream: bool,
    pub(crate) steps: VecDeque<Step>,
    /// The last step rides in the `done:true` object instead of its own.
    pub(crate) last_in_done: bool,
    pub(crate) prompt_eval_count: u64,
    pub(crate) num_predict: Option<u64>,
    pub(crate) stop: Vec<String>,
    /// At least this long between two objects (`#slow`), whatever the fake's timing says.
    pub(crate) min_token_delay: Duration,
    /// `messages: []` only loads (or, with `keep_alive: 0`, unloads) the model.
    pub(crate) load_only: Option<&'static str>,
}

/// Validates a chat request in Ollama's order, then picks the scenario named by the first
/// word of the last user message (any other prompt gets the default answer).
pub(crate) fn prepare(shared: &Shared, request: ChatRequest) -> Result<Job, Refusal> {
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
        model: Arc::from(name.as_str()),
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
        min_token_delay: Duration::ZERO,
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
            job.min_token_delay = SLOW_MIN_DELAY;
            numbered(2000)
        }
        "#long" => numbered(words.next().and_then(|n| n.parse().ok()).unwrap_or(100)),
        _ => tokens(answer).collect(),
    };
    Ok(job)
}

pub(crate) fn tokens(text: &'static [&'static str]) -> impl Iterator<Item = Step> {
    text.iter()
        .map(|t| Step::Emit(Message::new(t, "", Vec::new())))
}

/// `#long N`: the tokens of [`numbered_text`].
fn numbered(total: usize) -> VecDeque<Step> {
    [Step::Count { next: 0, total }].into()
}

/// Token `i` of a `#long` answer: `tok0`, ` tok1`, ... so that a client can tell a missing or
/// reordered token from the text alone.
pub fn numbered_token(i: usize) -> String {
    if i == 0 {
        "tok0".to_owned()
    } else {
        format!(" tok{i}")
    }
}

/// The whole answer to a prompt `#long n`.
pub fn numbered_text(n: usize) -> String {
    (0..n).map(numbered_token).collect()
}
