//! Request bodies read with our error shape: an oversized body is a 413 and malformed JSON a
//! 400 `invalid_request_error`, never axum's plain-text rejections.

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
