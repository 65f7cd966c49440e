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
use crate::queue::schedule::base_level;
use crate::queue::{Job, JobEvent, JobTicket, QueueError};

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
    let in_flight = state.limits.acquire(&tier.name, &key.id).map_err(|_| {
        state.stats.metrics().refused(&tier.name, "concurrency");
        ApiError::TooManyConcurrent(tier.max_concurrent)
    })?;
    let model = state.catalog.resolve(&request.model).await?;
    let job = Job {
        id: crate::ids::job_id(),
        tier: tier.name.clone(),
        base_level: base_level(tier.priority, request.service_tier),
        key_id: key.id.clone(),
        body: request
            .native_body(&model)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .into(),
        model,
        max_wait: tier.max_wait(),
        enqueued_at_ms: unix_ms(),
    };
    let model_name = job.model.clone();
    let submitted = state.queue.submit(job).await;
    let ticket = match state.stats.track(&tier.name, &model_name, submitted) {
        Ok(ticket) => ticket,
        Err(QueueError::TierFull { tier, max_queued }) => {
            return Err(queue_full(&state, &tier, max_queued));
        }
        Err(e @ QueueError::WouldWait { .. }) => {
            state.stats.metrics().shed(&tier.name);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let meta = ResponseMeta {
        id: crate::ids::completion_id(),
        created: unix_ms() / 1000,
        model: request.model.clone(),
        service_tier: request.service_tier.as_str(),
    };
    if request.stream {
        stream::respond(
            &state,
            ticket,
            meta,
            request.include_usage,
            &tier.name,
            in_flight,
        )
        .await
    } else {
        // The key's place is held until the answer is complete.
        let answer = tokio::select! {
            answer = complete(ticket, &meta) => answer,
            () = state.hard_stop.cancelled() => Err(ApiError::Unavailable(
                "the server is shutting down; retry shortly".to_owned(),
            )),
        };
        drop(in_flight);
        answer
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A full tier: the client should come back once the queue ahead of it has drained, which
/// recent throughput estimates.
fn queue_full(state: &AppState, tier: &str, max_queued: usize) -> ApiError {
    state.stats.metrics().refused(tier, "queue_full");
    let rate = state.queue.board().finished_per_sec().unwrap_or(0.0);
    let ahead = state.queue.snapshot().queued().max(max_queued) as f64;
    let wait = if rate > 0.0 { ahead / rate } else { 30.0 };
    ApiError::QueueFull {
        message: format!("the {tier} tier already has {max_queued} queued requests; retry later"),
        retry_after: std::time::Duration::from_secs_f64(wait.clamp(1.0, 600.0)),
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
