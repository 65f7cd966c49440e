//! Admin key management: create (the secret is shown once), list with filters, get one,
//! change name or tier, revoke. Changes live in the key store, so they survive restarts.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::auth::AdminCaller;
use crate::api::body::JsonBody;
use crate::api::error::ApiError;
use crate::api::openapi::responses::{AdminAuth, BadRequest, Conflict, NotFound};
use crate::api::params::{PathParams, Query, invalid};
use crate::api::state::AppState;
use crate::auth::store::is_key_id;
use crate::auth::{ApiKey, KeyChanges, KeyFilter, Role};

use super::tiers::{invalid_tier, known};

/// Body of `POST /admin/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "alice-laptop", "tier": "pro"}))]
pub struct CreateKey {
    /// A label for people, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// One of the configured tiers (`GET /admin/tiers`).
    #[schema(min_length = 1)]
    tier: String,
    /// `user` (the default) may call the OpenAI routes; `admin` also the admin API.
    #[serde(default)]
    role: Option<RoleName>,
    /// Unix seconds from which the key is refused with 401; in the future. Absent or null:
    /// the key never expires.
    #[serde(default)]
    #[schema(example = 1798761600)]
    expires_at: Option<i64>,
}

/// Body of `PATCH /admin/keys/{id}`: the fields to change, at least one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tier": "enterprise"}), min_properties = 1)]
pub struct UpdateKey {
    /// A new label, 1 to 200 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// A new tier; the key's next requests are queued at it.
    #[serde(default)]
    tier: Option<String>,
}

/// Filters of `GET /admin/keys`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListKeys {
    /// Only keys of this tier (any name: keys of a tier no longer configured can be found).
    tier: Option<String>,
    /// `true`: only revoked keys; `false`: only unrevoked ones.
    revoked: Option<bool>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// The OpenAI routes.
    User,
    /// The OpenAI routes and the admin API.
    Admin,
    /// `/metrics` only (a Prometheus scraper).
    Metrics,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::User => Self::User,
            Role::Admin => Self::Admin,
            Role::Metrics => Self::Metrics,
        }
    }
}

/// A key as the admin API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "key_7fQ2mZpXc9LkT1aB", "name": "alice-laptop", "tier": "pro",
    "role": "user", "created_at": 1767225600, "revoked_at": null, "expires_at": null}))]
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
    /// Unix seconds; null while the key is not revoked.
    #[schema(required = true)]
    revoked_at: Option<i64>,
    /// Unix seconds from which the key is refused; null: never.
    #[schema(required = true)]
    expires_at: Option<i64>,
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
            expires_at: key.expires_at,
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
    #[schema(example = "list")]
    object: &'static str,
    /// Keys, oldest first.
    data: Vec<KeyView>,
}

/// The trimmed name, or a 400 naming `name`.
fn valid_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid(Some("name"), "name must be 1 to 200 characters"));
    }
    Ok(name)
}

/// `id` if it has the shape of a key id: a typo is a 400, not a puzzling 404.
fn valid_id(id: String) -> Result<String, ApiError> {
    if is_key_id(&id) {
        Ok(id)
    } else {
        Err(invalid(
            Some("id"),
            format!("'{id}' is not a key id: ids are `key_` and 16 letters or digits"),
        ))
    }
}

fn unknown(id: &str) -> ApiError {
    ApiError::NotFound(format!("no API key has the id '{id}'"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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
    let name = valid_name(&body.name)?;
    let tier = known(&state, &body.tier, invalid_tier)?;
    if body.expires_at.is_some_and(|at| at <= unix_now()) {
        return Err(invalid(
            Some("expires_at"),
            "expires_at must be in the future (unix seconds)",
        ));
    }
    let role = match body.role {
        Some(RoleName::Admin) => Role::Admin,
        Some(RoleName::Metrics) => Role::Metrics,
        Some(RoleName::User) | None => Role::User,
    };
    let (key, secret) = state
        .keys
        .create_expiring(name, tier, role, body.expires_at)
        .await?;
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
    params(ListKeys),
    responses(
        (status = 200, description = "The keys, oldest first.", body = KeyList),
        BadRequest,
        AdminAuth,
    ),
)]
pub async fn list(
    _admin: AdminCaller,
    State(state): State<AppState>,
    Query(query): Query<ListKeys>,
) -> Result<Json<KeyList>, ApiError> {
    let filter = KeyFilter {
        tier: query.tier,
        revoked: query.revoked,
    };
    Ok(Json(KeyList {
        object: "list",
        data: state
            .keys
            .list(&filter)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// One key.
#[utoipa::path(
    get,
    path = "/admin/keys/{id}",
    tag = "keys",
    operation_id = "getKey",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id.", example = "key_7fQ2mZpXc9LkT1aB", pattern = "^key_[A-Za-z0-9]{16}$")),
    responses(
        (status = 200, description = "The key.", body = KeyView),
        BadRequest,
        AdminAuth,
        NotFound,
    ),
)]
pub async fn get(
    _admin: AdminCaller,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<KeyView>, ApiError> {
    let id = valid_id(id)?;
    let key = state.keys.get(&id).await?.ok_or_else(|| unknown(&id))?;
    Ok(Json(key.into()))
}

/// Changes a key's name or tier; a tier change applies from the key's next request.
#[utoipa::path(
    patch,
    path = "/admin/keys/{id}",
    tag = "keys",
    operation_id = "updateKey",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id.", example = "key_7fQ2mZpXc9LkT1aB", pattern = "^key_[A-Za-z0-9]{16}$")),
    request_body = UpdateKey,
    responses(
        (status = 200, description = "The changed key.", body = KeyView),
        BadRequest,
        AdminAuth,
        NotFound,
        Conflict,
    ),
)]
pub async fn update(
    AdminCaller(admin): AdminCaller,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<UpdateKey>,
) -> Result<Json<KeyView>, ApiError> {
    let id = valid_id(id)?;
    if body.name.is_none() && body.tier.is_none() {
        return Err(invalid(
            None,
            "nothing to change: give `name`, `tier` or both",
        ));
    }
    let changes = KeyChanges {
        name: body
            .name
            .as_deref()
            .map(valid_name)
            .transpose()?
            .map(str::to_owned),
        tier: body
            .tier
            .as_deref()
            .map(|t| known(&state, t, invalid_tier))
            .transpose()?
            .map(str::to_owned),
    };
    let existing = state.keys.get(&id).await?.ok_or_else(|| unknown(&id))?;
    if existing.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "the API key '{id}' is revoked and cannot be changed"
        )));
    }
    let key = state
        .keys
        .update(&id, &changes)
        .await?
        .ok_or_else(|| unknown(&id))?;
    tracing::info!(by = %admin.id, key = %id, tier = %key.tier, "API key changed");
    Ok(Json(key.into()))
}

/// Revokes a key; it is refused from the next request on.
#[utoipa::path(
    delete,
    path = "/admin/keys/{id}",
    tag = "keys",
    operation_id = "revokeKey",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The key's id.", example = "key_7fQ2mZpXc9LkT1aB", pattern = "^key_[A-Za-z0-9]{16}$")),
    responses(
        (status = 200, description = "The revoked key.", body = KeyView),
        BadRequest,
        AdminAuth,
        NotFound,
        Conflict,
    ),
)]
pub async fn revoke(
    AdminCaller(admin): AdminCaller,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<KeyView>, ApiError> {
    let id = valid_id(id)?;
    let existing = state.keys.get(&id).await?.ok_or_else(|| unknown(&id))?;
    if existing.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "the API key '{id}' is already revoked"
        )));
    }
    let revoked = state.keys.revoke(&id).await?.ok_or_else(|| unknown(&id))?;
    tracing::info!(by = %admin.id, key = %id, "API key revoked");
    Ok(Json(revoked.into()))
}
