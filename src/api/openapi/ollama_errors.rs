//! The error responses of Ollama's routes, in Ollama's shape `{"error": "..."}`: the
//! `ollama_errors` middleware rewrites every gateway error into it, so these routes must not
//! point at the OpenAI-shaped components. One component per status, named `Ollama` plus the
//! status (`OllamaNotFound`), with examples rendered from the same errors as the OpenAI ones
//! through the same rewrite, so they cannot disagree with what clients read.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{Modify, ToSchema};

use super::responses::{component_name, error_responses, examples};
use crate::api::error::ApiError;
use crate::ollama_api::render;

/// The examples of [`super::responses`] that an Ollama route can produce (not those of admin
/// resources such as key ids or tiers in a path).
const EXAMPLES: &[&str] = &[
    "no key",
    "unknown key",
    "revoked key",
    "expired key",
    "a key whose tier is no longer configured",
    "a value out of range",
    "an unknown model",
    "a body over the limit",
    "the tier's queue is full",
    "the key is over its rate",
    "the key has its maximum of requests running or queued",
    "Ollama is down",
    "the queue was cleared",
    "Ollama failed",
];

/// `{"error": "..."}`: the body of every error of Ollama's routes, as Ollama writes it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OllamaError)]
pub struct OllamaErrorBody {
    /// What went wrong.
    pub error: String,
}

fn component(status: StatusCode) -> String {
    format!("Ollama{}", component_name(status))
}

/// A path's reference to the Ollama-shaped component of `status`.
fn reference(status: StatusCode) -> BTreeMap<String, RefOr<Response>> {
    BTreeMap::from([(
        status.as_u16().to_string(),
        RefOr::Ref(Ref::from_response_name(component(status))),
    )])
}

/// Adds one response component per status of [`EXAMPLES`] (the `OllamaError` schema they
/// name is listed with the document's schemas).
#[derive(Debug)]
pub struct OllamaErrorComponents;

impl Modify for OllamaErrorComponents {
    fn modify(&self, doc: &mut OpenApi) {
        let mut by_status: BTreeMap<StatusCode, Vec<(&str, ApiError)>> = BTreeMap::new();
        let wanted = examples()
            .into_iter()
            .filter(|(summary, _)| EXAMPLES.contains(summary));
        for (summary, error) in wanted {
            by_status
                .entry(error.status())
                .or_default()
                .push((summary, error));
        }
        let components = doc.components.get_or_insert_with(Default::default);
        for (status, errors) in by_status {
            let description = format!(
                "{}: an Ollama-shaped error, `{{\"error\": \"...\"}}`.",
                status.canonical_reason().unwrap_or("Error")
            );
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("OllamaError")))
                .examples_from_iter(errors.into_iter().map(|(summary, error)| {
                    let body = serde_json::from_str(&render::error(&error.detail().message)).ok();
                    (
                        summary.replace(' ', "_"),
                        ExampleBuilder::new().summary(summary).value(body),
                    )
                }))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build();
            components
                .responses
                .insert(component(status), RefOr::T(response));
        }
    }
}

error_responses! {
    reference;
    /// 401: every Ollama route but `/api/version` needs a key.
    KeyAuth => [UNAUTHORIZED];
    /// 400: a malformed body.
    BadRequest => [BAD_REQUEST];
    /// 404: an unknown model.
    NotFound => [NOT_FOUND];
    /// 503: Ollama or the queue cannot serve now.
    Unavailable => [SERVICE_UNAVAILABLE];
    /// Every error of a route that queues a job on Ollama: a bad body (400, 413), the key
    /// (401, 403), an unknown model (404), the limits (429), Ollama or the queue down (503)
    /// or failing (502).
    JobErrors => [
        BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, PAYLOAD_TOO_LARGE, TOO_MANY_REQUESTS,
        SERVICE_UNAVAILABLE, BAD_GATEWAY
    ];
}

#[cfg(test)]
mod tests {
    use utoipa::IntoResponses;

    use super::*;

    #[test]
    fn every_example_named_exists_and_every_referenced_status_has_a_component() {
        let all: Vec<&str> = examples().into_iter().map(|(summary, _)| summary).collect();
        for name in EXAMPLES {
            assert!(all.contains(name), "no example is called {name:?}");
        }
        let mut doc = OpenApi::default();
        OllamaErrorComponents.modify(&mut doc);
        let defined = doc.components.unwrap_or_default().responses;
        let referenced = [
            KeyAuth::responses(),
            BadRequest::responses(),
            NotFound::responses(),
            Unavailable::responses(),
            JobErrors::responses(),
        ];
        for reference in referenced.iter().flat_map(BTreeMap::values) {
            let RefOr::Ref(reference) = reference else {
                panic!("a marker holds an inline response");
            };
            let name = reference
                .ref_location
                .rsplit('/')
                .next()
                .unwrap_or_default();
            assert!(defined.contains_key(name), "{name} has no component");
        }
    }
}
