//! Admin key management: create (the secret is shown once), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::AdminCaller;
use super::body::JsonBody;
use super::error::ApiError;
use super::state::AppState;
use crate::auth::{ApiKey, Role};
use crate::openai::RequestError;

/// Body of `POST /admin/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    tier: String,
    #[serde(default)]
    role: Option<RoleName>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RoleName {
    User,
    Admin,
}

/// The list of keys.
#[derive(Debug, Serialize)]
pub struct KeyList {
    object: &'static str,
    data: Vec<ApiKey>,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(RequestError {
        message: message.into(),
        param: Some(param.to_owned()),
    })
}

/// Creates a key.
pub async fn create(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(bad("name", "name must be 1 to 200 characters"));
    }
    if !state.tiers.contains_key(&body.tier) {
        let mut known: Vec<&str> = state.tiers.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(bad(
            "tier",
            format!(
                "unknown tier '{}'; configured tiers: {}",
                body.tier,
                known.join(", ")
            ),
        ));
    }
    let role = match body.role {
        Some(RoleName::Admin) => Role::Admin,
        Some(RoleName::User) | None => Role::User,
    };
    let (key, secret) = state.keys.create(name, &body.tier, role).await?;
    tracing::info!(by = %admin.id, key = %key.id, tier = %key.tier, "API key created");
    let mut json = serde_json::to_value(&key).map_err(|e| ApiError::Internal(e.to_string()))?;
    json["key"] = serde_json::Value::String(secret);
    Ok((StatusCode::CREATED, Json(json)))
}

/// Lists keys, without secrets.
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminCaller,
) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        object: "list",
        data: state.keys.list().await?,
    }))
}

/// Revokes a key; it is refused from the next request on.
pub async fn revoke(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    let Some(existing) = state.keys.get(&id).await? else {
        return Err(ApiError::NotFound(format!("no API key has the id '{id}'")));
    };
    if existing.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "the API key '{id}' is already revoked"
        )));
    }
    let revoked = state.keys.revoke(&id).await?;
    tracing::info!(by = %admin.id, key = %id, "API key revoked");
    revoked
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no API key has the id '{id}'")))
}
