//! `POST /v1/chat/completions`: auth, validation and admission happen before any byte of the
//! answer; then the job is queued and its events become one completion or an SSE stream.

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
use super::stream::{self, Render, SSE_DONE, push_sse_data, sse_comment, sse_data};
use super::submit::{submit, unix_ms};
use crate::openai::content_frame::ContentFrames;
use crate::openai::render::{CompletionBuilder, ResponseMeta, error_event};
use crate::openai::{ChatRequest, Delta};
use crate::queue::{JobEvent, JobKind};

#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    operation_id = "createChatCompletion",
    security(("bearer" = [])),
    request_body = super::openapi::chat_request::ChatCompletionRequest,
    responses(
        (status = 200, description = "The answer: one `chat.completion` object, or with \
            `stream: true` server-sent events of `ChatCompletionChunk` ending in `data: [DONE]`.",
            content(
                (super::openapi::chat_response::ChatCompletion = "application/json"),
                (super::openapi::sse::ChatCompletionEvent = "text/event-stream", example = json!(super::openapi::chat_response::STREAM_EXAMPLE)),
            )),
        super::openapi::responses::JobErrors,
    ),
)]
/// Creates a chat completion.
pub async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request = super::body::parse(body, ChatRequest::parse).await?;
    let admitted = submit(
        &state,
        &key,
        &request.model,
        (JobKind::Chat, request.service_tier),
        |model| request.native_body(model),
    )
    .await?;
    let meta = ResponseMeta {
        id: crate::ids::completion_id(),
        created: unix_ms() / 1000,
        model: request.model.clone(),
        service_tier: request.service_tier.as_str(),
    };
    let (stream, include_usage) = (request.stream, request.include_usage);
    // The parsed request (messages and tools, often kilobytes) is not needed while the answer
    // runs, which for a stream is its whole life.
    drop(request);
    if stream {
        let render = ChatSse {
            frames: ContentFrames::new(&meta),
            meta,
            include_usage,
        };
        return stream::respond(&state, admitted, render).await;
    }
    let answer = answer::wait(&state, admitted).await?;
    let mut builder = CompletionBuilder::default();
    builder.push(Delta {
        first: true,
        content: Some(answer.content),
        reasoning: (!answer.reasoning.is_empty()).then_some(answer.reasoning),
        tool_calls: answer.tool_calls,
    });
    let json = builder.finish(&meta, &answer.finish_reason, answer.usage);
    Ok(([(CONTENT_TYPE, "application/json")], json).into_response())
}

/// `chat.completion.chunk` frames, the finish chunk, the usage chunk when asked, `[DONE]`.
struct ChatSse {
    frames: ContentFrames,
    meta: ResponseMeta,
    include_usage: bool,
}

impl Render for ChatSse {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn event(&mut self, event: JobEvent, out: &mut BytesMut) -> bool {
        match event {
            JobEvent::Delta(delta) => {
                if !self.frames.write(&delta, out) {
                    self.meta.write_delta_frame(&delta, out);
                }
            }
            JobEvent::Finished {
                finish_reason,
                usage,
            } => {
                push_sse_data(out, &self.meta.finish_chunk(&finish_reason));
                if self.include_usage {
                    push_sse_data(out, &self.meta.usage_chunk(usage));
                }
                out.extend_from_slice(SSE_DONE);
                return true;
            }
            JobEvent::Started { .. } | JobEvent::Embeddings { .. } | JobEvent::Failed(_) => {}
        }
        false
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        sse_data(&error_event(&error.detail()))
    }

    fn comment(&self, text: &str) -> Option<Bytes> {
        Some(sse_comment(text))
    }
}
