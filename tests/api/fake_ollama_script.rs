//! The fake's scripts: a chat request validated in Ollama's order, the scenario its last user
//! message names, and Ollama's error answers.

use super::*;

/// The fields of `api.ChatRequest` the fake uses; like Go, it ignores unknown ones.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChatRequest {
    pub(super) model: Option<String>,
    pub(super) messages: Vec<ChatMessage>,
    pub(super) tools: Vec<Value>,
    /// Absent or null means true.
    pub(super) stream: Option<bool>,
    pub(super) think: Option<Value>,
    pub(super) format: Option<Value>,
    pub(super) keep_alive: Option<Value>,
    /// `map[string]any` in Ollama too: unknown and oddly typed options are ignored here.
    pub(super) options: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ChatMessage {
    pub(super) role: String,
    pub(super) content: Option<String>,
}

/// One step of a scripted answer.
#[derive(Debug)]
pub(super) enum Step {
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
pub(super) struct Job {
    /// The model name exactly as requested: Ollama echoes it back.
    pub(super) model: String,
    pub(super) prompt: String,
    pub(super) stream: bool,
    pub(super) steps: VecDeque<Step>,
    /// The last step rides in the `done:true` object instead of its own.
    pub(super) last_in_done: bool,
    pub(super) prompt_eval_count: u64,
    pub(super) num_predict: Option<u64>,
    pub(super) stop: Vec<String>,
    pub(super) token_delay: Duration,
    /// `messages: []` only loads (or, with `keep_alive: 0`, unloads) the model.
    pub(super) load_only: Option<&'static str>,
}

/// Validates a chat request in Ollama's order, then picks the scenario named by the first
/// word of the last user message (any other prompt gets the default answer).
pub(super) fn prepare(shared: &Shared, request: ChatRequest) -> Result<Job, Refusal> {
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

pub(super) fn tokens(text: &'static [&'static str]) -> impl Iterator<Item = Step> {
    text.iter()
        .map(|t| Step::Emit(Message::new(t, "", Vec::new())))
}

/// `tok0`, ` tok1`, ...
pub(super) fn numbered(n: usize) -> VecDeque<Step> {
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

/// A response whose body fails at once, so hyper closes the connection without an answer.
pub(super) fn abort_response() -> Response {
    let failure = io::Error::other("fake Ollama dropped the connection");
    Body::from_stream(stream::once(async { Err::<Bytes, _>(failure) })).into_response()
}

/// An `{"error":"..."}` answer, sent before any byte of a stream.
#[derive(Debug)]
pub(super) struct Refusal(pub(super) StatusCode, pub(super) String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_body(self.0, &json!({"error": self.1}))
    }
}

pub(super) fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}

/// gin reads the body with `encoding/json` whatever its Content-Type says.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, Refusal> {
    if body.is_empty() {
        return Err(bad_request("missing request body"));
    }
    serde_json::from_slice(body).map_err(|error| bad_request(error.to_string()))
}

/// Typed like Go's decoder: a wrongly typed field is a 400 (with serde's wording, not Go's).
pub(super) fn decode<T: DeserializeOwned + Default>(body: &Value) -> Result<T, Refusal> {
    if body.is_null() {
        // Go decodes `null` into a struct as a no-op.
        return Ok(T::default());
    }
    T::deserialize(body).map_err(|error| bad_request(error.to_string()))
}

/// The name with `:latest` added when it has no tag (a `:` after the last `/`).
pub(super) fn with_tag(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

pub(super) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl IntoResponse,
) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// gin's `c.JSON`: compact, without a trailing newline.
pub(super) fn json_body(status: StatusCode, value: &impl Serialize) -> Response {
    respond(
        status,
        JSON,
        serde_json::to_string(value).unwrap_or_default(),
    )
}

pub(super) fn ndjson(value: &impl Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Go's RFC3339Nano in UTC: trailing zeros of the fraction trimmed, e.g. `...24.097767Z`.
pub(super) fn rfc3339_nano(time: SystemTime) -> String {
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
