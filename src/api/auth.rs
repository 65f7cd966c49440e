//! Extractors that guard routes: a handler taking [`Caller`] or [`AdminCaller`] cannot forget to
//! check the key.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::secret::from_bearer;
use crate::auth::{ApiKey, Role};

/// The caller of an OpenAI route: any valid key, neither revoked nor expired.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

/// The caller of an admin route: an admin key.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub ApiKey);

impl Caller {
    /// The key of an `Authorization: Bearer` header, if valid and not revoked.
    pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Self, ApiError> {
        let secret = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(from_bearer)
            .ok_or(ApiError::MissingKey)?;
        let key = state
            .keys
            .authenticate(secret)
            .await?
            .ok_or(ApiError::InvalidKey)?;
        if key.revoked_at.is_some() {
            return Err(ApiError::RevokedKey);
        }
        if key.is_expired() {
            return Err(ApiError::ExpiredKey);
        }
        Ok(Self(key))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The rate-limit middleware authenticated this request already.
        if let Some(caller) = parts.extensions.get::<Self>() {
            return Ok(caller.clone());
        }
        Self::authenticate(&parts.headers, state).await
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(key) = Caller::from_request_parts(parts, state).await?;
        if key.role == Role::Admin {
            Ok(Self(key))
        } else {
            Err(ApiError::AdminOnly)
        }
    }
}
