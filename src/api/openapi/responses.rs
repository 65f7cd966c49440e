//! The error responses of the OpenAPI document, one reusable component per HTTP status.
//!
//! Their examples are rendered from real [`ApiError`] values through the same table that writes
//! error bodies at run time, so the documented status, `type` and `code` cannot disagree with
//! what clients receive.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use utoipa::Modify;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};

use crate::api::error::ApiError;
use crate::openai::{ErrorBody, RequestError};

/// Errors worth showing as examples, each with the situation that produces it.
pub(super) fn examples() -> Vec<(&'static str, ApiError)> {
    let invalid = |param: &str, message: &str| {
        ApiError::InvalidRequest(RequestError {
            message: message.to_owned(),
            param: Some(param.to_owned()),
        })
    };
    vec![
        ("no key", ApiError::MissingKey),
        ("unknown key", ApiError::InvalidKey),
        ("revoked key", ApiError::RevokedKey),
        ("expired key", ApiError::ExpiredKey),
        ("user key on an admin route", ApiError::AdminOnly),
        (
            "a key whose tier is no longer configured",
            ApiError::UnknownTier("gold".to_owned()),
        ),
        (
            "a value out of range",
            invalid("temperature", "Invalid 'temperature': 9 is outside [0, 2]"),
        ),
        (
            "an unknown tier",
            invalid(
                "tier",
                "unknown tier 'platinum'; configured tiers: free, pro, enterprise",
            ),
        ),
        (
            "an unknown model",
            ApiError::ModelNotFound("llama9:70b".to_owned()),
        ),
        (
            "an unknown tier in a path",
            ApiError::NotFound(
                "unknown tier 'platinum'; configured tiers: free, pro, enterprise".to_owned(),
            ),
        ),
        (
            "a malformed key id",
            invalid(
                "id",
                "'42' is not a key id: ids are `key_` and 16 letters or digits",
            ),
        ),
        (
            "an unknown key id",
            ApiError::NotFound("no API key has the id 'key_0000000000000000'".to_owned()),
        ),
        (
            "a second revocation",
            ApiError::Conflict("the API key 'key_0000000000000000' is already revoked".to_owned()),
        ),
        (
            "a change to a revoked key",
            ApiError::Conflict(
                "the API key 'key_0000000000000000' is revoked and cannot be changed".to_owned(),
            ),
        ),
        ("a body over the limit", ApiError::BodyTooLarge(16_777_216)),
        (
            "the tier's queue is full",
            ApiError::QueueFull {
                message: "the free tier already has 1000 queued requests; retry later".to_owned(),
                retry_after: std::time::Duration::from_secs(12),
            },
        ),
        (
            "the key is over its rate",
            ApiError::RateLimited {
                limit: 60,
                retry_after: std::time::Duration::from_millis(800),
            },
        ),
        (
            "the key has its maximum of requests running or queued",
            ApiError::TooManyConcurrent(4),
        ),
        (
            "Ollama is down",
            ApiError::Unavailable("Ollama is unreachable; retry shortly".to_owned()),
        ),
        (
            "the queue was cleared",
            ApiError::Unavailable("the queue was cleared by an administrator".to_owned()),
        ),
        (
            "Ollama failed",
            ApiError::Upstream("Ollama answered 500: model runner has stopped".to_owned()),
        ),
    ]
}

/// The component name of an error status, e.g. `NotFound` for 404.
pub(super) fn component_name(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("Error")
        .split([' ', '-'])
        .collect()
}

/// A path's reference to the OpenAI-shaped component of `status`.
pub(super) fn reference(status: StatusCode) -> BTreeMap<String, RefOr<Response>> {
    let name = component_name(status);
    BTreeMap::from([(
        status.as_u16().to_string(),
        RefOr::Ref(Ref::from_response_name(name)),
    )])
}

/// Adds one response component per status that [`examples`] produce.
#[derive(Debug)]
pub struct ErrorComponents;

impl Modify for ErrorComponents {
    fn modify(&self, doc: &mut OpenApi) {
        let mut by_status: BTreeMap<StatusCode, Vec<(&str, ApiError)>> = BTreeMap::new();
        for (summary, error) in examples() {
            by_status
                .entry(error.status())
                .or_default()
                .push((summary, error));
        }
        let components = doc.components.get_or_insert_with(Default::default);
        for (status, errors) in by_status {
            let description = format!(
                "{}: an OpenAI-shaped error; `code` and `param` say what went wrong.",
                status.canonical_reason().unwrap_or("Error")
            );
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorResponse")))
                .examples_from_iter(errors.into_iter().map(|(summary, error)| {
                    let body = serde_json::to_value(ErrorBody {
                        error: error.detail(),
                    })
                    .ok();
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
                .insert(component_name(status), RefOr::T(response));
        }
    }
}

/// Declares marker types that put references to error components in a path's `responses(...)`;
/// `$reference` maps a status to the reference (OpenAI-shaped here, Ollama-shaped in
/// [`super::ollama_errors`]).
macro_rules! error_responses {
    ($reference:path; $($(#[$doc:meta])* $name:ident => [$($status:ident),+];)+) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                let mut all = std::collections::BTreeMap::new();
                $(all.append(&mut $reference(axum::http::StatusCode::$status));)+
                all
            }
        }
    )+};
}
pub(super) use error_responses;

error_responses! {
    reference;
    /// 401 and 403: every admin route needs an admin key.
    AdminAuth => [UNAUTHORIZED, FORBIDDEN];
    /// 401: every OpenAI route needs a key.
    KeyAuth => [UNAUTHORIZED];
    /// 403: the key's tier is no longer configured.
    Forbidden => [FORBIDDEN];
    /// 400: a malformed body or parameter.
    BadRequest => [BAD_REQUEST];
    /// 404: an unknown resource.
    NotFound => [NOT_FOUND];
    /// 409: the resource is not in a state that allows the change.
    Conflict => [CONFLICT];
    /// 413: a body over the configured limit.
    PayloadTooLarge => [PAYLOAD_TOO_LARGE];
    /// 429: the tier's queue is full, or Ollama is overloaded.
    TooManyRequests => [TOO_MANY_REQUESTS];
    /// 503: Ollama or the queue cannot serve now.
    Unavailable => [SERVICE_UNAVAILABLE];
    /// 502: Ollama failed.
    BadGateway => [BAD_GATEWAY];
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
    fn component_names_are_the_reason_phrases_without_spaces() {
        assert_eq!(component_name(StatusCode::NOT_FOUND), "NotFound");
        assert_eq!(
            component_name(StatusCode::PAYLOAD_TOO_LARGE),
            "PayloadTooLarge"
        );
    }

    #[test]
    fn every_referenced_status_has_an_example() {
        let mut doc = OpenApi::default();
        ErrorComponents.modify(&mut doc);
        let defined = doc.components.unwrap_or_default().responses;
        let referenced = [
            AdminAuth::responses(),
            KeyAuth::responses(),
            Forbidden::responses(),
            BadRequest::responses(),
            NotFound::responses(),
            Conflict::responses(),
            PayloadTooLarge::responses(),
            TooManyRequests::responses(),
            Unavailable::responses(),
            BadGateway::responses(),
            JobErrors::responses(),
        ];
        for status in referenced.iter().flat_map(BTreeMap::keys) {
            let code = StatusCode::from_bytes(status.as_bytes()).unwrap();
            assert!(
                defined.contains_key(&component_name(code)),
                "{status} is referenced but has no component"
            );
        }
    }
}
