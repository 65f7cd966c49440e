//! One client request and what became of it, judged from the outside only.
//!
//! Every request carries a prompt no other request has (`#long N r<id>`), so the fakes' logs
//! say how often it ran, and the fake's answer to it is known in advance (`tok0 tok1 ...`), so
//! a missing or repeated token shows. A streamed request is accepted when its `200` arrives
//! (admission happens before the stream starts); a refusal before that never queued anything.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

/// How long a request may take to be admitted, and to end.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Until the response status arrives.
    pub admission: Duration,
    /// Until the answer or the error is complete.
    pub total: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            admission: Duration::from_secs(20),
            total: Duration::from_secs(120),
        }
    }
}

/// A request with a prompt of its own and the answer the fakes give to it.
#[derive(Debug, Clone)]
pub struct Ask {
    pub prompt: String,
    pub expected: String,
    pub stream: bool,
}

impl Ask {
    /// A streamed chat whose answer has `tokens` tokens; `id` makes the prompt unique.
    pub fn new(id: &str, tokens: usize) -> Self {
        Self {
            prompt: format!("#long {tokens} r{id}"),
            expected: fake_ollama::numbered_text(tokens),
            stream: true,
        }
    }

    pub fn unstreamed(mut self) -> Self {
        self.stream = false;
        self
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole answer arrived once, and the stream ended with `[DONE]`.
    Completed,
    /// Not admitted: an error status before any stream (`0`: the gateway did not answer at
    /// all, e.g. it was down). Nothing was queued, so a client may retry.
    Refused {
        status: u16,
        retry_after: bool,
        message: String,
    },
    /// Accepted, then ended with an explicit error: an SSE error event, or an error JSON.
    Failed(String),
    /// Accepted, then the connection ended with neither `[DONE]` nor an error.
    Cut(String),
    /// `[DONE]` (or a 200 JSON) with an answer other than the one the fake sends.
    Wrong(String),
    /// Neither admitted nor refused within its [`Limits`].
    HungAtAdmission,
    /// Accepted, then not ended within its [`Limits`]; what had arrived by then.
    Hung(String),
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        !matches!(self, Self::Refused { .. } | Self::HungAtAdmission)
    }
}

/// Sends `ask` to the gateway at `base` with `key`; `on_accept` runs once the `200` arrives.
pub async fn send(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    ask: &Ask,
    limits: Limits,
    on_accept: impl FnOnce(),
) -> Outcome {
    let started = Instant::now();
    let body = json!({
        "model": "llama3.2",
        "messages": [{"role": "user", "content": ask.prompt}],
        "stream": ask.stream,
    });
    let sent = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send();
    let response = match tokio::time::timeout(limits.admission, sent).await {
        Err(_) => return Outcome::HungAtAdmission,
        Ok(Err(e)) => {
            return Outcome::Refused {
                status: 0,
                retry_after: false,
                message: e.to_string(),
            };
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let rest = limits.total.saturating_sub(started.elapsed());
    if ask.stream && status != 200 {
        let message = match tokio::time::timeout(rest, response.json::<Value>()).await {
            Ok(Ok(body)) => body["error"]["message"].as_str().unwrap_or("").to_owned(),
            _ => String::new(),
        };
        return Outcome::Refused {
            status,
            retry_after,
            message,
        };
    }
    on_accept();
    // What has arrived so far, kept outside the read so a timeout can still tell.
    let mut text = String::new();
    let ended = if ask.stream {
        tokio::time::timeout(rest, read_stream(response, &ask.expected, &mut text)).await
    } else {
        tokio::time::timeout(rest, read_json(response, status, &ask.expected)).await
    };
    ended.unwrap_or_else(|_| {
        Outcome::Hung(format!(
            "{} of {} characters after {:?}",
            text.len(),
            ask.expected.len(),
            started.elapsed()
        ))
    })
}

/// Reads SSE events until the stream ends, collecting the content deltas into `text`.
async fn read_stream(
    mut response: reqwest::Response,
    expected: &str,
    text: &mut String,
) -> Outcome {
    let mut buffer = String::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Outcome::Cut("the stream ended without [DONE]".to_owned()),
            Err(e) => return Outcome::Cut(format!("the stream broke: {e}")),
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if data == "[DONE]" {
                    return judge(text, expected);
                }
                let Ok(value) = serde_json::from_str::<Value>(data) else {
                    return Outcome::Wrong(format!("an event that is not JSON: {data}"));
                };
                if let Some(error) = value.get("error") {
                    return Outcome::Failed(error_message(error));
                }
                if let Some(delta) = value.pointer("/choices/0/delta/content") {
                    text.push_str(delta.as_str().unwrap_or_default());
                }
            }
        }
    }
}

async fn read_json(response: reqwest::Response, status: u16, expected: &str) -> Outcome {
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(e) => return Outcome::Cut(format!("the body broke: {e}")),
    };
    match status {
        200 => judge(
            body.pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            expected,
        ),
        _ if body.get("error").is_some() => Outcome::Failed(error_message(&body["error"])),
        _ => Outcome::Wrong(format!("{status} without an error object: {body}")),
    }
}

fn judge(text: &str, expected: &str) -> Outcome {
    if text == expected {
        Outcome::Completed
    } else {
        Outcome::Wrong(format!(
            "{} characters instead of {}",
            text.len(),
            expected.len()
        ))
    }
}

fn error_message(error: &Value) -> String {
    error["message"]
        .as_str()
        .map_or_else(|| error.to_string(), str::to_owned)
}
