//! Request bodies read with our error shape: an oversized body is a 413 and malformed JSON a
//! 400 `invalid_request_error`, never axum's plain-text rejections. Large bodies are parsed
//! off the runtime thread ([`parse`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::openai::RequestError;

/// The raw body, size-checked against the router's `DefaultBodyLimit`.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        match Bytes::from_request(req, state).await {
            // A body that arrived with its request head is a slice of the connection's read
            // buffer, and would pin that buffer for as long as the handler runs (for a stream,
            // until its first token): hyper's next read, which watches for the client leaving,
            // then allocates a second buffer (8 KB per open stream). A copy costs far less
            // than parsing the JSON it holds.
            Ok(bytes) => Ok(Self(Bytes::copy_from_slice(&bytes))),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::BodyTooLarge(limit))
            }
            Err(rejection) => Err(ApiError::InvalidRequest(RequestError {
                message: format!("Could not read the request body: {rejection}"),
                param: None,
            })),
        }
    }
}

/// Bodies larger than this are parsed on tokio's blocking pool. Seadragon runs one runtime
/// thread by default, and a body of images parsed in place (a few ms per MB) would hold every
/// other stream and request meanwhile; a small body is parsed faster than it is handed over.
pub const PARSE_INLINE_MAX: usize = 256 * 1024;

/// `parse(body)` as an API error on failure; a body over [`PARSE_INLINE_MAX`] is parsed on
/// the blocking pool, off the runtime thread.
pub async fn parse<T: Send + 'static>(
    body: Bytes,
    parse: fn(&[u8]) -> Result<T, RequestError>,
) -> Result<T, ApiError> {
    if body.len() <= PARSE_INLINE_MAX {
        return parse(&body).map_err(ApiError::InvalidRequest);
    }
    match tokio::task::spawn_blocking(move || parse(&body)).await {
        Ok(parsed) => parsed.map_err(ApiError::InvalidRequest),
        // A parser that panics is a bug either way: the panic goes on as it would in place.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(ApiError::Unavailable("the server is shutting down".into())),
        },
    }
}

/// The configured body limit, put in request extensions so errors can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body deserialised with a path-precise error message.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de)
            .map(JsonBody)
            .map_err(|e| {
                let param = e.path().to_string();
                ApiError::InvalidRequest(RequestError {
                    message: format!("Invalid request body: {}", e.into_inner()),
                    param: (param != ".").then_some(param),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Stands for parsing a large body: it holds its thread for 200 ms.
    fn slow(body: &[u8]) -> Result<usize, RequestError> {
        std::thread::sleep(Duration::from_millis(200));
        Ok(body.len())
    }

    fn refuse(_: &[u8]) -> Result<usize, RequestError> {
        Err(RequestError {
            message: "bad".into(),
            param: None,
        })
    }

    /// Counts the 10 ms ticks the runtime thread manages while `parse` runs on `size` bytes.
    async fn ticks_while_parsing(size: usize) -> usize {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::task::yield_now().await;
        let parsed = parse(Bytes::from(vec![b' '; size]), slow).await.unwrap();
        assert_eq!(parsed, size);
        ticker.abort();
        ticks.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_large_body_is_parsed_off_the_runtime_thread() {
        let ticks = ticks_while_parsing(PARSE_INLINE_MAX + 1).await;
        assert!(
            ticks >= 5,
            "the runtime thread ticked {ticks} times in 200 ms"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_body_is_parsed_in_place() {
        assert_eq!(ticks_while_parsing(100).await, 0);
    }

    #[tokio::test]
    async fn a_refused_body_is_a_400_however_large() {
        for size in [10, PARSE_INLINE_MAX + 1] {
            let err = parse(Bytes::from(vec![b' '; size]), refuse)
                .await
                .unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }
}
