//! How Ollama's server (gin on Go's `encoding/json`) writes and reads: content types, `c.JSON`
//! bodies, NDJSON lines, `{"error":"..."}` refusals, lenient decoding and RFC3339Nano times.

use std::fmt::Write as _;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub(crate) const NDJSON: &str = "application/x-ndjson";
/// gin's `c.JSON`, used for every non-streamed answer and every error.
pub(crate) const JSON: &str = "application/json; charset=utf-8";
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

/// An `{"error":"..."}` answer, sent before any byte of a stream.
#[derive(Debug)]
pub(crate) struct Refusal(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_body(self.0, &json!({"error": self.1}))
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}

/// A response whose body fails at once, so hyper closes the connection without an answer.
pub(crate) fn abort_response() -> Response {
    let failure = io::Error::other("fake Ollama dropped the connection");
    Body::from_stream(stream::once(async { Err::<Bytes, _>(failure) })).into_response()
}

/// gin reads the body with `encoding/json` whatever its Content-Type says.
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, Refusal> {
    if body.is_empty() {
        return Err(bad_request("missing request body"));
    }
    serde_json::from_slice(body).map_err(|error| bad_request(error.to_string()))
}

/// Typed like Go's decoder: a wrongly typed field is a 400 (with serde's wording, not Go's).
pub(crate) fn decode<T: DeserializeOwned + Default>(body: &Value) -> Result<T, Refusal> {
    if body.is_null() {
        // Go decodes `null` into a struct as a no-op.
        return Ok(T::default());
    }
    T::deserialize(body).map_err(|error| bad_request(error.to_string()))
}

/// The name with `:latest` added when it has no tag (a `:` after the last `/`).
pub(crate) fn with_tag(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl IntoResponse,
) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// gin's `c.JSON`: compact, without a trailing newline.
pub(crate) fn json_body(status: StatusCode, value: &impl Serialize) -> Response {
    respond(
        status,
        JSON,
        serde_json::to_string(value).unwrap_or_default(),
    )
}

pub(crate) fn ndjson(value: &impl Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Go's RFC3339Nano in UTC: trailing zeros of the fraction trimmed, e.g. `...24.097767Z`.
pub(crate) fn rfc3339_nano(time: SystemTime) -> String {
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
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    // Every object carries a time, so this stays one allocation: the fraction's trailing zeros
    // are dropped by arithmetic, not by formatting and trimming a string.
    let (mut fraction, mut digits) = (since_epoch.subsec_nanos(), 9);
    while digits > 0 && fraction % 10 == 0 {
        (fraction, digits) = (fraction / 10, digits - 1);
    }
    let mut out = String::with_capacity(32);
    let _ = write!(out, "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    if digits > 0 {
        let _ = write!(out, ".{fraction:0digits$}");
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_go_rfc3339_nano_in_utc() {
        let at = |secs, nanos| rfc3339_nano(UNIX_EPOCH + Duration::new(secs, nanos));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00Z");
        // 2025-10-26T17:15:24.097767Z, an object of the reference's chat stream.
        assert_eq!(at(1_761_498_924, 97_767_000), "2025-10-26T17:15:24.097767Z");
        assert_eq!(at(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
    }

    #[test]
    fn names_without_a_tag_get_latest() {
        assert_eq!(with_tag("llama3.2"), "llama3.2:latest");
        assert_eq!(with_tag("qwen3:8b"), "qwen3:8b");
        assert_eq!(
            with_tag("host:5000/user/model"),
            "host:5000/user/model:latest"
        );
    }
}
