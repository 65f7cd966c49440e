//! Extractors that guard routes: a handler taking [`Caller`], [`AdminCaller`] or
//! [`MetricsCaller`] cannot forget to check the key.

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

/// The caller of `/metrics`: an admin key or a key of role `metrics`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsCaller;

impl Caller {
    /// The key of an `Authorization: Bearer` header, if valid, not revoked and allowed on the
    /// OpenAI routes (a metrics key is not).
    pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Self, ApiError> {
        let key = valid_key(headers, state).await?;
        if key.role == Role::Metrics {
            return Err(ApiError::MetricsOnly);
        }
        Ok(Self(key))
    }
}

/// Any valid key of the request, whatever its role: from the rate-limit middleware's
/// authentication when it ran, otherwise from the header.
async fn any_valid_key(parts: &Parts, state: &AppState) -> Result<ApiKey, ApiError> {
    if let Some(Caller(key)) = parts.extensions.get::<Caller>() {
        return Ok(key.clone());
    }
    valid_key(&parts.headers, state).await
}

/// The key of an `Authorization: Bearer` header, if valid, neither revoked nor expired.
async fn valid_key(headers: &HeaderMap, state: &AppState) -> Result<ApiKey, ApiError> {
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
    super::access_log::note_key(&key.id, &key.tier);
    Ok(key)
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
        let key = any_valid_key(parts, state).await?;
        if key.role == Role::Admin {
            Ok(Self(key))
        } else {
            Err(ApiError::AdminOnly)
        }
    }
}

impl FromRequestParts<AppState> for MetricsCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = any_valid_key(parts, state).await?;
        if matches!(key.role, Role::Admin | Role::Metrics) {
            Ok(Self)
        } else {
            Err(ApiError::AdminOnly)
        }
    }
}
