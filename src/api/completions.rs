//! `POST /v1/completions`: text completion for IDE autocompletion, queued like chat and run
//! on Ollama's `/api/generate`.

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
use crate::openai::completions::{CompletionMeta, CompletionRequest};
use crate::openai::content_frame::TextFrames;
use crate::openai::render::error_event;
use crate::queue::{JobEvent, JobKind};

#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "openai",
    operation_id = "createCompletion",
    security(("bearer" = [])),
    request_body = super::openapi::completions::TextCompletionRequest,
    responses(
        (status = 200, description = "One `text_completion` object, or with `stream: true` \
            server-sent events of `text_completion` chunks ending in `data: [DONE]`.",
            content(
                (super::openapi::completions::TextCompletion = "application/json"),
                (super::openapi::sse::TextCompletionEvent = "text/event-stream"),
            )),
        super::openapi::responses::JobErrors,
    ),
)]
/// Creates a text completion.
pub async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request = super::body::parse(body, CompletionRequest::parse).await?;
    let admitted = submit(
        &state,
        &key,
        &request.model,
        (JobKind::Generate, request.service_tier),
        |model| request.native_body(model),
    )
    .await?;
    let meta = CompletionMeta {
        id: crate::ids::text_completion_id(),
        created: unix_ms() / 1000,
        model: request.model.clone(),
    };
    let (stream, include_usage) = (request.stream, request.include_usage);
    // The parsed request is not needed while the answer runs (a stream's whole life).
    drop(request);
    if stream {
        let frames = TextFrames::from_reference(|text, out| {
            push_sse_data(out, &meta.text_chunk(text));
        });
        let render = CompletionSse {
            frames,
            meta,
            include_usage,
        };
        return stream::respond(&state, admitted, render).await;
    }
    let answer = answer::wait(&state, admitted).await?;
    let json = meta.completion(&answer.content, &answer.finish_reason, answer.usage);
    Ok(([(CONTENT_TYPE, "application/json")], json).into_response())
}

/// Text chunks, the finish chunk, the usage chunk when asked, `[DONE]`.
struct CompletionSse {
    frames: TextFrames,
    meta: CompletionMeta,
    include_usage: bool,
}

impl Render for CompletionSse {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn event(&mut self, event: JobEvent, out: &mut BytesMut) -> bool {
        match event {
            JobEvent::Delta(delta) => {
                // Reasoning of thinking models is not part of a completion's text.
                if let Some(text) = delta.content.filter(|t| !t.is_empty())
                    && !self.frames.write(&text, out)
                {
                    push_sse_data(out, &self.meta.text_chunk(&text));
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
