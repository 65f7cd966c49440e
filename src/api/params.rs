//! Query strings and path segments read with our error shape: a malformed one is a 400
//! `invalid_request_error`, never axum's plain-text rejection.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::openai::RequestError;

/// A query string deserialised into `T`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| invalid(None, rejection.body_text()))
    }
}

/// Path parameters deserialised into `T`.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection| invalid(None, rejection.body_text()))
    }
}

/// A 400 naming `param`.
pub fn invalid(param: Option<&str>, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(RequestError {
        message: message.into(),
        param: param.map(str::to_owned),
    })
}
