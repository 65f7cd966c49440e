//! `POST /v1/responses`: the Responses API (Codex CLI, Zed and Copilot when configured for
//! it), queued like chat and run on Ollama's `/api/chat`. Stateless: nothing is stored.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;

use super::answer;
use super::auth::Caller;
use super::body::RawBody;
use super::error::ApiError;
use super::state::AppState;
use super::stream::{self, Render, sse_comment};
use super::submit::{submit, unix_ms};
use crate::openai::Delta;
use crate::openai::responses::events::Event;
use crate::openai::responses::{ResponseBuilder, ResponsesRequest};
use crate::queue::{JobEvent, JobKind};

#[utoipa::path(
    post,
    path = "/v1/responses",
    tag = "openai",
    operation_id = "createResponse",
    security(("bearer" = [])),
    request_body(content = Object, description = "A Responses API request: `model`, \
        `instructions`, `input` (a string, or message, `function_call` and \
        `function_call_output` items), function `tools`, `tool_choice`, `max_output_tokens`, \
        `reasoning.effort`, `text.format`, `stream`. `previous_response_id` is refused: \
        nothing is stored.", example = json!({"model": "gpt-oss:20b", "instructions": "Be brief.",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say OK"}]}],
        "store": false, "stream": true})),
    responses(
        (status = 200, description = "The `response` object, or with `stream: true` \
            server-sent events (`event:` and `data:` lines) from `response.created` to \
            `response.completed`.",
            content(
                (Object = "application/json"),
                (super::openapi::sse::ResponseStreamEvent = "text/event-stream"),
            )),
        super::openapi::responses::JobErrors,
    ),
)]
/// Creates a model response.
pub async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request = super::body::parse(body, ResponsesRequest::parse).await?;
    let admitted = submit(
        &state,
        &key,
        &request.model,
        (JobKind::Chat, request.service_tier),
        |model| request.native_body(model),
    )
    .await?;
    let mut builder = ResponseBuilder::new(
        unix_ms() / 1000,
        request.model.clone(),
        request.echo.clone(),
    );
    let stream = request.stream;
    // The parsed request is not needed while the answer runs (a stream's whole life).
    drop(request);
    if stream {
        let mut pending = BytesMut::new();
        frames(builder.start(), &mut pending);
        let render = ResponsesSse { builder, pending };
        return stream::respond(&state, admitted, render).await;
    }
    let answer = answer::wait(&state, admitted).await?;
    let whole = Delta {
        first: true,
        content: Some(answer.content),
        reasoning: Some(answer.reasoning),
        tool_calls: answer.tool_calls,
    };
    builder.push(&whole);
    builder.finish(&answer.finish_reason, answer.usage);
    Ok((
        [(CONTENT_TYPE, "application/json")],
        builder.response().to_string(),
    )
        .into_response())
}

fn frame(event: &Event) -> Bytes {
    Bytes::from(format!("event: {}\ndata: {}\n\n", event.kind, event.data))
}

fn frames(events: Vec<Event>, out: &mut BytesMut) {
    for event in events {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(event.data.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

/// `event:`/`data:` pairs; the opening events wait in `pending` for the first job event, so
/// a job that fails before it still gets a proper HTTP error.
struct ResponsesSse {
    builder: ResponseBuilder,
    pending: BytesMut,
}

impl Render for ResponsesSse {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn event(&mut self, event: JobEvent, out: &mut BytesMut) -> bool {
        out.extend_from_slice(&self.pending.split());
        match event {
            JobEvent::Delta(delta) => frames(self.builder.push(&delta), out),
            JobEvent::Finished {
                finish_reason,
                usage,
            } => {
                frames(self.builder.finish(&finish_reason, usage), out);
                return true;
            }
            JobEvent::Started { .. } | JobEvent::Embeddings { .. } | JobEvent::Failed(_) => {}
        }
        false
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        frame(&self.builder.error(&error.detail()))
    }

    fn comment(&self, text: &str) -> Option<Bytes> {
        Some(sse_comment(text))
    }
}
