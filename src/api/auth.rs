//! Extractors that guard routes: a handler taking [`Caller`] or [`AdminCaller`] cannot forget to
//! check the key.

use axum::extract::FromRequestParts;
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = parts
            .headers
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
