//! `POST /v1/chat/completions`: auth, validation and admission happen before any byte of the
//! answer; then the job is queued and its events become one completion or an SSE stream.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::body::RawBody;
use super::error::ApiError;
use super::state::AppState;
use super::stream;
use crate::openai::ChatRequest;
use crate::openai::render::{CompletionBuilder, ResponseMeta};
use crate::queue::priority::base_level;
use crate::queue::{Job, JobEvent, JobTicket};

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
                (String = "text/event-stream", example = json!(super::openapi::chat_response::STREAM_EXAMPLE)),
            )),
        super::openapi::responses::BadRequest,
        super::openapi::responses::KeyAuth,
        super::openapi::responses::Forbidden,
        super::openapi::responses::NotFound,
        super::openapi::responses::PayloadTooLarge,
        super::openapi::responses::TooManyRequests,
        super::openapi::responses::Unavailable,
        super::openapi::responses::BadGateway,
    ),
)]
/// Creates a chat completion.
pub async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request = ChatRequest::parse(&body)?;
    let tier = state
        .tiers
        .get(&key.tier)
        .ok_or_else(|| ApiError::UnknownTier(key.tier.clone()))?;
    let model = state.catalog.resolve(&request.model).await?;
    let job = Job {
        id: crate::ids::job_id(),
        tier: tier.name.clone(),
        base_level: base_level(tier.priority, request.service_tier),
        key_id: key.id.clone(),
        body: request.native_body(&model),
        model,
        max_wait: tier.max_wait(),
    };
    let model_name = job.model.clone();
    let ticket = state
        .stats
        .track(&tier.name, &model_name, state.queue.submit(job).await)?;
    let meta = ResponseMeta {
        id: crate::ids::completion_id(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: request.model.clone(),
        service_tier: request.service_tier.as_str(),
    };
    if request.stream {
        stream::respond(&state, ticket, meta, request.include_usage, &tier.name).await
    } else {
        complete(ticket, &meta).await
    }
}

/// Waits for the whole answer. If the client disconnects, hyper drops this future and with it
/// the ticket, which cancels the job.
async fn complete(mut ticket: JobTicket, meta: &ResponseMeta) -> Result<Response, ApiError> {
    let mut answer = CompletionBuilder::default();
    loop {
        match ticket.next_event().await {
            Some(JobEvent::Started { .. }) => {}
            Some(JobEvent::Delta(delta)) => answer.push(delta),
            Some(JobEvent::Finished {
                finish_reason,
                usage,
            }) => {
                let json = answer.finish(meta, &finish_reason, usage);
                return Ok(([(CONTENT_TYPE, "application/json")], json).into_response());
            }
            Some(JobEvent::Failed(failure)) => return Err(failure.into()),
            None => {
                return Err(ApiError::Unavailable(
                    "the worker running this request stopped; retry".to_owned(),
                ));
            }
        }
    }
}
