//! The one HTTP error type: one table from variant to (status, OpenAI type, code) and one place
//! that writes the `{"error": {...}}` body.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::StoreError;
use crate::catalog::CatalogError;
use crate::openai::{ErrorBody, ErrorDetail, RequestError};
use crate::queue::{JobFailure, QueueError};

/// Everything an HTTP route can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer` header.
    #[error("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")]
    MissingKey,
    /// The key is unknown.
    #[error("Incorrect API key provided.")]
    InvalidKey,
    /// The key was revoked.
    #[error("This API key has been revoked.")]
    RevokedKey,
    /// The key's expiry time has passed.
    #[error("This API key has expired.")]
    ExpiredKey,
    /// A user key on an admin route.
    #[error("This route needs an admin key.")]
    AdminOnly,
    /// A metrics key on any route but `/metrics`.
    #[error("This key has the metrics role: it reads /metrics and nothing else.")]
    MetricsOnly,
    /// The key's tier is no longer configured.
    #[error("The tier '{0}' of this API key is not configured on this server.")]
    UnknownTier(String),
    /// The request body or parameters are wrong.
    #[error("{}", .0.message)]
    InvalidRequest(RequestError),
    /// The request body is over the configured limit.
    #[error("The request body is larger than the limit of {0} bytes.")]
    BodyTooLarge(usize),
    /// No installed model has the requested name.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// Unknown route or resource.
    #[error("{0}")]
    NotFound(String),
    /// The resource is not in a state that allows this change.
    #[error("{0}")]
    Conflict(String),
    /// Known route, wrong method.
    #[error("Method not allowed on this route.")]
    MethodNotAllowed,
    /// The caller's tier already has its maximum of queued requests.
    #[error("{message}")]
    QueueFull {
        /// What is full.
        message: String,
        /// An estimate of when a place frees up, from recent throughput.
        retry_after: Duration,
    },
    /// The key is over its tier's request rate.
    #[error("Rate limit reached for requests: {limit} per minute for this key. Retry in {}.", crate::limits::openai_duration(*.retry_after))]
    RateLimited {
        /// Requests per minute of the tier.
        limit: u32,
        /// When a request is allowed again.
        retry_after: Duration,
    },
    /// The key already has its tier's maximum of requests running or queued.
    #[error(
        "This key already has {0} requests running or queued, the most its tier allows; wait for one to finish."
    )]
    TooManyConcurrent(u32),
    /// Ollama refused the request as too busy or rate limited.
    #[error("{0}")]
    Overloaded(String),
    /// Ollama (or the queue) cannot serve now.
    #[error("{0}")]
    Unavailable(String),
    /// Ollama failed in a way that is not the client's fault.
    #[error("{0}")]
    Upstream(String),
    /// A bug or an infrastructure failure; the details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The table: HTTP status, OpenAI error type, error code.
    fn parts(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        use StatusCode as S;
        const INVALID: &str = "invalid_request_error";
        match self {
            Self::MissingKey => (S::UNAUTHORIZED, INVALID, None),
            Self::InvalidKey | Self::RevokedKey | Self::ExpiredKey => {
                (S::UNAUTHORIZED, INVALID, Some("invalid_api_key"))
            }
            Self::AdminOnly | Self::MetricsOnly => {
                (S::FORBIDDEN, INVALID, Some("insufficient_permissions"))
            }
            Self::UnknownTier(_) => (S::FORBIDDEN, INVALID, Some("unknown_tier")),
            Self::InvalidRequest(_) => (S::BAD_REQUEST, INVALID, None),
            Self::BodyTooLarge(_) => (S::PAYLOAD_TOO_LARGE, INVALID, Some("request_too_large")),
            Self::ModelNotFound(_) => (S::NOT_FOUND, INVALID, Some("model_not_found")),
            Self::NotFound(_) => (S::NOT_FOUND, INVALID, Some("not_found")),
            Self::Conflict(_) => (S::CONFLICT, INVALID, Some("conflict")),
            Self::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, INVALID, Some("method_not_allowed")),
            Self::QueueFull { .. } => (S::TOO_MANY_REQUESTS, "requests", Some("queue_full")),
            Self::RateLimited { .. } => (
                S::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
            ),
            Self::TooManyConcurrent(_) => (
                S::TOO_MANY_REQUESTS,
                "requests",
                Some("concurrency_limit_exceeded"),
            ),
            Self::Overloaded(_) => (
                S::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
            ),
            Self::Unavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                "server_error",
                Some("service_unavailable"),
            ),
            Self::Upstream(_) => (S::BAD_GATEWAY, "server_error", Some("upstream_error")),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "server_error", None),
        }
    }

    /// How long a client should wait before retrying, for the errors where that is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::QueueFull { retry_after, .. } | Self::RateLimited { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::TooManyConcurrent(_) | Self::Overloaded(_) | Self::Unavailable(_) => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The OpenAI error object, also used for in-band stream errors.
    pub fn detail(&self) -> ErrorDetail {
        let (_, kind, code) = self.parts();
        let message = match self {
            // Internals are logged where they happen; clients get no stack of causes.
            Self::Internal(_) => {
                "The server had an error while processing your request.".to_owned()
            }
            other => other.to_string(),
        };
        let param = match self {
            Self::InvalidRequest(e) => e.param.clone(),
            Self::ModelNotFound(_) => Some("model".to_owned()),
            _ => None,
        };
        ErrorDetail {
            message,
            kind: kind.to_owned(),
            param,
            code: code.map(str::to_owned),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(wait) = self.retry_after() {
            // Whole seconds, never 0 (a 0 makes SDKs retry at once); the OpenAI SDKs also
            // read the precise retry-after-ms.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            let millis = u64::try_from(wait.as_millis().max(1)).unwrap_or(u64::MAX);
            headers.insert("retry-after-ms", HeaderValue::from(millis));
        }
        if matches!(self, Self::TooManyConcurrent(_)) {
            // Retrying at once cannot help: the key must first finish its own requests.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        Self::InvalidRequest(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // An unreachable database is an outage to retry through, not a bug.
        if e.is_unavailable() {
            Self::Unavailable(format!("the key store is unreachable: {e}; retry shortly"))
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(model) => Self::ModelNotFound(model),
            CatalogError::Ollama(e) => {
                // The error names Ollama's address: it goes to the log, not to the client.
                tracing::warn!(error = %e, "Ollama did not answer a model lookup");
                Self::Unavailable("Ollama is unreachable; retry shortly".to_owned())
            }
            CatalogError::Store(e) => e.into(),
            CatalogError::NoWorkers => Self::Unavailable(format!("{e}; retry shortly")),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::TierFull { .. } => Self::QueueFull {
                message: format!("{e}; retry later"),
                retry_after: Duration::from_secs(1),
            },
            QueueError::WouldWait { wait, max_wait, .. } => Self::QueueFull {
                message: format!("{e}; retry later"),
                // By then the queue ahead should have drained by the excess.
                retry_after: wait
                    .saturating_sub(max_wait)
                    .clamp(Duration::from_secs(1), Duration::from_secs(600)),
            },
            QueueError::Closed | QueueError::ClientGone | QueueError::Unavailable(_) => {
                Self::Unavailable(e.to_string())
            }
        }
    }
}

impl From<JobFailure> for ApiError {
    fn from(f: JobFailure) -> Self {
        match f.status {
            404 => Self::NotFound(f.message),
            429 => Self::Overloaded(f.message),
            400..=499 => Self::InvalidRequest(RequestError {
                message: f.message,
                param: None,
            }),
            503 => Self::Unavailable(f.message),
            _ => Self::Upstream(f.message),
        }
    }
}
