//! The per-key rate limit of the OpenAI routes, applied right after authentication (with the
//! key's concurrency, before the body is read), and OpenAI's `x-ratelimit-*-requests` headers
//! on every response it lets through.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::error::ApiError;
use super::state::AppState;
use crate::limits::{RateInfo, Refusal, openai_duration};

/// Authenticates, counts the request against the key's tier rate, and reports the state.
pub async fn rate_limit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match Caller::authenticate(request.headers(), &state).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let info = match state.limits.check_rate(&caller.0.tier, &caller.0.id) {
        Ok(info) => info,
        Err(Refusal::Rate { info, retry_after }) => {
            state.stats.metrics().refused(&caller.0.tier, "rate");
            let mut response = ApiError::RateLimited {
                limit: info.limit,
                retry_after,
            }
            .into_response();
            write_headers(response.headers_mut(), info);
            return response;
        }
        Err(Refusal::Concurrency { limit }) => {
            return ApiError::TooManyConcurrent(limit).into_response();
        }
    };
    // A key at its concurrency limit is refused before its body is read and parsed (a body
    // may be 16 MiB of images); the handler takes the place for good after the parse.
    if let Err(limit) = state.limits.has_room(&caller.0.tier, &caller.0.id) {
        state.stats.metrics().refused(&caller.0.tier, "concurrency");
        return ApiError::TooManyConcurrent(limit).into_response();
    }
    // The handler's own `Caller` extractor finds the key here instead of asking the store again.
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if let Some(info) = info {
        write_headers(response.headers_mut(), info);
    }
    response
}

fn write_headers(headers: &mut HeaderMap, info: RateInfo) {
    headers.insert("x-ratelimit-limit-requests", HeaderValue::from(info.limit));
    headers.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from(info.remaining),
    );
    if let Ok(reset) = HeaderValue::from_str(&openai_duration(info.reset)) {
        headers.insert("x-ratelimit-reset-requests", reset);
    }
}
