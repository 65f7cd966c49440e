//! Models as admins see them: installed models with Ollama's details and capabilities, the
//! configured aliases, and the default model that `"default"` and aliases resolve to.

use axum::Json;
use axum::extract::State;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::auth::AdminCaller;
use crate::api::body::JsonBody;
use crate::api::error::ApiError;
use crate::api::openapi::responses::{AdminAuth, BadRequest, NotFound, Unavailable};
use crate::api::params::invalid;
use crate::api::state::AppState;
use crate::catalog::CatalogError;
use crate::ollama::wire::{ModelDetails, ModelEntry, ShowResponse};

/// An installed model with what Ollama's `/api/show` says about it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "llama3.2:latest", "size": 2019393189,
    "modified_at": "2025-05-04T17:37:44.706015396-07:00", "family": "llama",
    "parameter_size": "3.2B", "quantization_level": "Q4_K_M", "context_length": 131072,
    "capabilities": ["completion", "tools"], "default": true}))]
pub struct ModelInfo {
    /// Installed name with tag.
    name: String,
    /// Bytes on disk.
    size: u64,
    /// When it was pulled or changed, as Ollama reports it (RFC 3339).
    modified_at: String,
    /// Model family.
    #[schema(required = true)]
    family: Option<String>,
    /// Parameter count, e.g. `8.0B`.
    #[schema(required = true)]
    parameter_size: Option<String>,
    /// Quantisation, e.g. `Q4_K_M`.
    #[schema(required = true)]
    quantization_level: Option<String>,
    /// Context length it was trained for; null when `/api/show` did not answer.
    #[schema(required = true)]
    context_length: Option<u64>,
    /// `completion`, `tools`, `thinking`, `vision`, `embedding`, ...
    capabilities: Vec<String>,
    /// Whether `"default"` resolves to it now.
    default: bool,
}

/// A configured alias.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasInfo {
    /// The name clients send, e.g. `gpt-4o`.
    alias: String,
    /// What it is configured to mean: an installed model or `default`.
    target: String,
    /// The installed model it resolves to now; null when that model is not installed.
    #[schema(required = true)]
    resolves_to: Option<String>,
}

/// Installed models and aliases.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminModelList {
    /// Always `list`.
    #[schema(example = "list")]
    object: &'static str,
    /// Installed models, newest first.
    data: Vec<ModelInfo>,
    /// Configured aliases, by name.
    aliases: Vec<AliasInfo>,
}

/// The default model.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"model": "qwen3:8b", "selected": "qwen3:8b"}))]
pub struct DefaultModel {
    /// What `"default"` resolves to now: the selected model while it is installed, else the
    /// newest installed model; null when no model is installed.
    #[schema(required = true)]
    model: Option<String>,
    /// The model an admin selected (kept across restarts); null when none was.
    #[schema(required = true)]
    selected: Option<String>,
}

/// Body of `PUT /admin/models/default`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "qwen3:8b"}))]
pub struct SelectDefault {
    /// An installed model; `llama3.2` means `llama3.2:latest`. Aliases are not accepted.
    model: String,
}

fn info(entry: &ModelEntry, show: Option<ShowResponse>, default: Option<&str>) -> ModelInfo {
    // `/api/show` is the fuller source; `/api/tags` still has the basics when it fails.
    let tags: ModelDetails = serde_json::from_value(entry.details.clone()).unwrap_or_default();
    let show = show.unwrap_or_default();
    let details = show.details.clone();
    ModelInfo {
        name: entry.name.clone(),
        size: entry.size,
        modified_at: entry.modified_at.clone(),
        family: details.family.or(tags.family),
        parameter_size: details.parameter_size.or(tags.parameter_size),
        quantization_level: details.quantization_level.or(tags.quantization_level),
        context_length: show.context_length(),
        capabilities: show.capabilities,
        default: default == Some(entry.name.as_str()),
    }
}

/// `"default"` now, or `None` when no model is installed.
async fn current_default(state: &AppState) -> Result<Option<String>, ApiError> {
    match state.catalog.default_model().await {
        Ok(model) => Ok(Some(model)),
        Err(CatalogError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Lists installed models with their details, and the aliases.
#[utoipa::path(
    get,
    path = "/admin/models",
    tag = "models",
    operation_id = "listAdminModels",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Installed models and aliases.", body = AdminModelList),
        AdminAuth,
        Unavailable,
    ),
)]
pub async fn list(
    _admin: AdminCaller,
    State(state): State<AppState>,
) -> Result<Json<AdminModelList>, ApiError> {
    let models = state.catalog.models().await?;
    let default = current_default(&state).await?;
    // One `/api/show` per model, all at once; a model it fails for is still listed.
    let shows = join_all(models.iter().map(|m| state.catalog.show(&m.name))).await;
    let data = models
        .iter()
        .zip(shows)
        .map(|(entry, show)| info(entry, show, default.as_deref()))
        .collect();
    let mut aliases = Vec::new();
    for (alias, target) in state.catalog.aliases() {
        aliases.push(AliasInfo {
            alias: alias.clone(),
            target: target.clone(),
            resolves_to: state.catalog.resolve(alias).await.ok(),
        });
    }
    Ok(Json(AdminModelList {
        object: "list",
        data,
        aliases,
    }))
}

/// The default model.
#[utoipa::path(
    get,
    path = "/admin/models/default",
    tag = "models",
    operation_id = "getDefaultModel",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What `default` resolves to, and the selection.", body = DefaultModel),
        AdminAuth,
        Unavailable,
    ),
)]
pub async fn get_default(
    _admin: AdminCaller,
    State(state): State<AppState>,
) -> Result<Json<DefaultModel>, ApiError> {
    Ok(Json(DefaultModel {
        model: current_default(&state).await?,
        selected: state.catalog.selected_default().await?,
    }))
}

/// Selects the default model; it is kept across restarts.
#[utoipa::path(
    put,
    path = "/admin/models/default",
    tag = "models",
    operation_id = "setDefaultModel",
    security(("bearer" = [])),
    request_body = SelectDefault,
    responses(
        (status = 200, description = "The new default.", body = DefaultModel),
        BadRequest,
        AdminAuth,
        NotFound,
        Unavailable,
    ),
)]
pub async fn set_default(
    AdminCaller(admin): AdminCaller,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SelectDefault>,
) -> Result<Json<DefaultModel>, ApiError> {
    let name = body.model.trim();
    if name.is_empty() {
        return Err(invalid(Some("model"), "model must name an installed model"));
    }
    // An alias (or "default" itself) would make the default depend on itself.
    if name == "default" || state.catalog.aliases().contains_key(name) {
        return Err(invalid(
            Some("model"),
            format!("'{name}' is an alias; select an installed model (GET /admin/models)"),
        ));
    }
    let selected = state.catalog.select_default(name).await?;
    tracing::info!(by = %admin.id, model = %selected, "default model selected");
    Ok(Json(DefaultModel {
        model: Some(selected.clone()),
        selected: Some(selected),
    }))
}
