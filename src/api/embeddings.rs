//! `POST /v1/embeddings`: queued like every job, at the key's tier, and run on Ollama's
//! `/api/embed`. An embedding takes a fraction of a generation's time, so it simply takes
//! its turn: no separate lane, no exemption from the tier's limits.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::answer;
use super::auth::Caller;
use super::body::RawBody;
use super::error::ApiError;
use super::state::AppState;
use super::submit::submit;
use crate::openai::embeddings::{EmbeddingRequest, render};
use crate::queue::JobKind;

#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "openai",
    operation_id = "createEmbedding",
    security(("bearer" = [])),
    request_body = super::openapi::embeddings::EmbeddingRequest,
    responses(
        (status = 200, description = "One vector per input, ordered by `index`.",
            body = super::openapi::embeddings::EmbeddingList),
        super::openapi::responses::JobErrors,
    ),
)]
/// Creates embeddings.
pub async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request = super::body::parse(body, EmbeddingRequest::parse).await?;
    let admitted = submit(
        &state,
        &key,
        &request.model,
        (JobKind::Embed, request.service_tier),
        |model| request.native_body(model),
    )
    .await?;
    let answer = answer::wait(&state, admitted).await?;
    let json = render(
        &request.model,
        answer.embeddings,
        request.base64,
        answer.usage,
    );
    Ok(([(CONTENT_TYPE, "application/json")], json).into_response())
}
