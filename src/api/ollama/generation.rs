//! `/api/chat`, `/api/generate`, `/api/embed` (and the older `/api/embeddings`): the client's native body becomes a job like
//! any other (the caller's tier, limits, aliases, `default`), and its events are written back
//! as Ollama writes them: NDJSON unless `stream: false`, then one object.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;

use super::{JSON, refuse};
use crate::api::answer;
use crate::api::auth::Caller;
use crate::api::body::RawBody;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::stream::{self, Render};
use crate::api::submit::submit;
use crate::ollama_api::render::{self, NativeMeta, Whole};
use crate::ollama_api::{NativeKind, NativeRequest};
use crate::openai::ServiceTier;
use crate::queue::JobEvent;

/// Runs one native request as a job.
async fn run(state: AppState, caller: Caller, kind: NativeKind, body: &[u8]) -> Response {
    let arrived = Instant::now();
    let request = match NativeRequest::parse(kind, body) {
        Ok(request) => request,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    let Caller(key) = caller;
    let admitted = match submit(
        &state,
        &key,
        &request.model,
        (kind.job_kind(), ServiceTier::Standard),
        |model| request.native_body(model),
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(e) => return e.into_response(),
    };
    let meta = NativeMeta {
        kind,
        model: request.model.clone(),
        arrived,
    };
    if request.stream && !kind.embeds() {
        return stream::respond(&state, admitted, Ndjson { meta })
            .await
            .into_response();
    }
    let answer = match answer::wait(&state, admitted).await {
        Ok(answer) => answer,
        Err(e) => return e.into_response(),
    };
    let json = if kind.embeds() {
        meta.embeddings(&answer.embeddings, answer.usage)
    } else {
        let whole = Whole {
            content: &answer.content,
            thinking: &answer.reasoning,
            tool_calls: &answer.tool_calls,
        };
        meta.done(&whole, &answer.finish_reason, answer.usage)
    };
    ([(CONTENT_TYPE, JSON)], json).into_response()
}

/// NDJSON objects, one per delta, then the `done:true` object.
struct Ndjson {
    meta: NativeMeta,
}

fn push_line(out: &mut BytesMut, json: &str) {
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n");
}

fn line(json: String) -> Bytes {
    let mut bytes = json.into_bytes();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl Render for Ndjson {
    const CONTENT_TYPE: &'static str = "application/x-ndjson";

    fn event(&mut self, event: JobEvent, out: &mut BytesMut) -> bool {
        match event {
            JobEvent::Delta(delta) => {
                if let Some(json) = self.meta.delta(&delta) {
                    push_line(out, &json);
                }
            }
            JobEvent::Finished {
                finish_reason,
                usage,
            } => {
                let done = self.meta.done(&Whole::default(), &finish_reason, usage);
                push_line(out, &done);
                return true;
            }
            JobEvent::Started { .. } | JobEvent::Embeddings { .. } | JobEvent::Failed(_) => {}
        }
        false
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        line(render::error(&error.detail().message))
    }

    fn comment(&self, _text: &str) -> Option<Bytes> {
        None
    }
}

/// A chat turn, queued at the caller's tier.
#[utoipa::path(
    post,
    path = "/api/chat",
    tag = "ollama",
    operation_id = "ollamaChat",
    security(("bearer" = [])),
    request_body(content = Object, description = "Ollama's chat request: `model`, \
        `messages`, `tools`, `options`, `think`, `format`, `stream` (default true)."),
    responses(
        (status = 200, description = "NDJSON objects with `message`, the last with \
            `done: true`, `done_reason` and counts; one such object with `stream: false`.",
            content((String = "application/x-ndjson"), (Object = "application/json"))),
        crate::api::openapi::ollama_errors::JobErrors,
    ),
)]
pub async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Response {
    run(state, caller, NativeKind::Chat, &body).await
}

/// A completion of a prompt (`raw`, `suffix` for fill-in-the-middle), queued at the
/// caller's tier.
#[utoipa::path(
    post,
    path = "/api/generate",
    tag = "ollama",
    operation_id = "ollamaGenerate",
    security(("bearer" = [])),
    request_body(content = Object, description = "Ollama's generate request: `model`, \
        `prompt`, `suffix`, `raw`, `options`, `stream` (default true)."),
    responses(
        (status = 200, description = "NDJSON objects with `response`, the last with \
            `done: true`; one such object with `stream: false`.",
            content((String = "application/x-ndjson"), (Object = "application/json"))),
        crate::api::openapi::ollama_errors::JobErrors,
    ),
)]
pub async fn generate(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Response {
    run(state, caller, NativeKind::Generate, &body).await
}

/// Embeddings, queued at the caller's tier like any job.
#[utoipa::path(
    post,
    path = "/api/embed",
    tag = "ollama",
    operation_id = "ollamaEmbed",
    security(("bearer" = [])),
    request_body(content = Object, description = "`{\"model\": ..., \"input\": \"text\" | \
        [\"a\", \"b\"], \"dimensions\": ...}`."),
    responses(
        (status = 200, description = "`{\"model\", \"embeddings\": [[...]], \
            \"prompt_eval_count\"}`.", body = Object),
        crate::api::openapi::ollama_errors::JobErrors,
    ),
)]
pub async fn embed(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Response {
    run(state, caller, NativeKind::Embed, &body).await
}

/// The older embeddings route: `{"model", "prompt"}` → `{"embedding": [...]}`.
#[utoipa::path(
    post,
    path = "/api/embeddings",
    tag = "ollama",
    operation_id = "ollamaEmbeddings",
    security(("bearer" = [])),
    request_body(content = Object, description = "`{\"model\": ..., \"prompt\": \"text\"}`."),
    responses(
        (status = 200, description = "`{\"embedding\": [...]}`.", body = Object),
        crate::api::openapi::ollama_errors::JobErrors,
    ),
)]
pub async fn embeddings(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Response {
    run(state, caller, NativeKind::LegacyEmbed, &body).await
}
