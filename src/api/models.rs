//! `GET /v1/models` and `GET /v1/models/{id}`: installed Ollama models (ids with tag) and the
//! configured aliases that resolve to one.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use super::state::AppState;
use crate::catalog::CatalogError;
use crate::ollama::wire::ModelEntry;

/// One entry of the OpenAI model list.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "llama3.2:latest", "object": "model", "created": 1746405464, "owned_by": "library"}))]
pub struct Model {
    /// Installed name with tag, or a configured alias.
    id: String,
    /// Always `model`.
    #[schema(example = "model")]
    object: &'static str,
    /// Unix seconds of the model's last change; 0 for aliases.
    created: i64,
    /// The model's namespace (`library` for official models); `seadragon` for aliases.
    owned_by: String,
}

/// `{"object":"list","data":[...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    #[schema(example = "list")]
    object: &'static str,
    /// Installed models, newest first, then aliases that resolve.
    data: Vec<Model>,
}

fn model(id: &str, entry: Option<&ModelEntry>) -> Model {
    let owned_by = match (entry, id.split_once('/')) {
        (None, _) => "seadragon".to_owned(),
        (Some(_), Some((namespace, _))) => namespace.to_owned(),
        (Some(_), None) => "library".to_owned(),
    };
    let created = entry
        .and_then(|e| {
            time::OffsetDateTime::parse(
                &e.modified_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
        })
        .map_or(0, time::OffsetDateTime::unix_timestamp);
    Model {
        id: id.to_owned(),
        object: "model",
        created,
        owned_by,
    }
}

/// Lists installed models, then aliases that currently resolve.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    operation_id = "listModels",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The installed models and aliases.", body = ModelList),
        super::openapi::responses::KeyAuth,
        super::openapi::responses::Unavailable,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<ModelList>, ApiError> {
    let models = state.catalog.models().await?;
    let mut data: Vec<Model> = models.iter().map(|m| model(&m.name, Some(m))).collect();
    for alias in state.catalog.aliases().keys() {
        if !models.iter().any(|m| &m.name == alias) && state.catalog.resolve(alias).await.is_ok() {
            data.push(model(alias, None));
        }
    }
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// One model by the id a client uses (`llama3.2`, `llama3.2:latest` or an alias).
// The router serves this path as `/v1/models/{*id}`, because model ids may contain slashes
// (`namespace/model:tag`); it is documented from `ApiDoc` for that reason.
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    tag = "openai",
    operation_id = "retrieveModel",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "A model id, with or without tag, or an alias; \
        it may contain slashes (`namespace/model:tag`).", example = "llama3.2")),
    responses(
        (status = 200, description = "The model.", body = Model),
        super::openapi::responses::KeyAuth,
        super::openapi::responses::NotFound,
        super::openapi::responses::Unavailable,
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    let resolved = match state.catalog.resolve(&id).await {
        Ok(name) => name,
        Err(CatalogError::NotFound(_)) => return Err(ApiError::ModelNotFound(id)),
        Err(e) => return Err(e.into()),
    };
    let models = state.catalog.models().await?;
    let is_alias = state.catalog.aliases().contains_key(&id);
    let entry = models
        .iter()
        .find(|m| m.name == resolved)
        .filter(|_| !is_alias);
    Ok(Json(model(&id, entry)))
}
