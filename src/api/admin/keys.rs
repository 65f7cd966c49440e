//! Admin key management: create (the secret is shown once), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::auth::AdminCaller;
use crate::api::body::JsonBody;
use crate::api::error::ApiError;
use crate::api::openapi::responses::{AdminAuth, BadRequest, Conflict, NotFound};
use crate::api::state::AppState;
use crate::auth::{ApiKey, Role};
use crate::openai::RequestError;

/// Body of `POST /admin/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "alice-laptop", "tier": "pro"}))]
pub struct CreateKey {
    /// A label for people, 1 to 200 characters.
    name: String,
    /// One of the configured tiers (`GET /admin/tiers`).
    tier: String,
    /// `user` (the default) may call the OpenAI routes; `admin` also the admin API.
    #[serde(default)]
    role: Option<RoleName>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// The OpenAI routes.
    User,
    /// The OpenAI routes and the admin API.
    Admin,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::User => Self::User,
            Role::Admin => Self::Admin,
        }
    }
}

/// A key as the admin API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "key_7fQ2mZpXc9LkT1aB", "name": "alice-laptop", "tier": "pro",
    "role": "user", "created_at": 1767225600, "revoked_at": null}))]
pub struct KeyView {
    /// `key_` and 16 characters.
    id: String,
    /// The label.
    name: String,
    /// The tier its requests are queued at.
    tier: String,
    /// What it may do.
    role: RoleName,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; null while the key is valid.
    #[schema(required = true)]
    revoked_at: Option<i64>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name,
            tier: key.tier,
            role: key.role.into(),
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new key with its secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    view: KeyView,
    /// The secret `sk-sd-...`: store it now, it is never shown again.
    #[schema(example = "sk-sd-3Jm0pQx7vTq2Ld9sWc4Rb8Yh1Nk6Fz5Ga0Ue2Io7Xt")]
    key: String,
}

/// The list of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Always `list`.
    object: &'static str,
    /// Keys, oldest first.
    data: Vec<KeyView>,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(RequestError {
        message: message.into(),
        param: Some(param.to_owned()),
    })
}

/// Creates a key; its secret is in this answer only (the store keeps a hash).
#[utoipa::path(
    post,
    path = "/admin/keys",
    tag = "keys",
    operation_id = "createKey",
    security(("bearer" = [])),
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key, with its secret.", body = CreatedKey),
        BadRequest,
        AdminAuth,
    ),
)]
pub async fn create(
    AdminCaller(admin): AdminCaller,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
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
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            view: key.into(),
            key: secret,
        }),
    ))
}

/// Lists keys, without secrets.
#[utoipa::path(
    get,
    path = "/admin/keys",
    tag = "keys",
    operation_id = "listKeys",
    security(("bearer" = [])),
    responses((status = 200, description = "The keys, oldest first.", body = KeyList), AdminAuth),
)]
pub async fn list(
    _admin: AdminCaller,
    State(state): State<AppState>,
) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        object: "list",
        data: state
            .keys
            .list()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Revokes a key; it is refused from the next request on.
#[utoipa::path(
    delete,
    path = "/admin/keys/{id}",
    tag = "keys",
    operation_id = "revokeKey",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id.", example = "key_7fQ2mZpXc9LkT1aB")),
    responses(
        (status = 200, description = "The revoked key.", body = KeyView),
        AdminAuth,
        NotFound,
        Conflict,
    ),
)]
pub async fn revoke(
    AdminCaller(admin): AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
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
        .map(|key| Json(key.into()))
        .ok_or_else(|| ApiError::NotFound(format!("no API key has the id '{id}'")))
}
