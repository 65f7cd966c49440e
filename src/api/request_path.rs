//! The request path as clients write it, made routable before anything else sees it.
//!
//! - Keys in the path, for clients that cannot send an `Authorization` header (Copilot's and
//!   Cline's Ollama providers, Zed's edit prediction): every route is also served under
//!   `/k/<api-key>/`, e.g. `/k/sk-sd-.../api/tags` or `/k/sk-sd-.../v1/chat/completions`. The
//!   prefix is removed first, so routing, tracing (which logs the URI) and metrics only ever
//!   see the path without the key. The key then authenticates the request as a bearer key
//!   would, unless the request carries a key of its own: a non-empty `Authorization: Bearer`
//!   header wins (an empty `Bearer ` counts as none).
//! - Doubled slashes, from base URLs entered with a trailing slash (Roo asks for
//!   `/v1//models`), are collapsed.

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, Uri};

use crate::auth::secret::from_bearer;

/// The path prefix that carries a key.
const PREFIX: &str = "/k/";

/// Collapses doubled slashes, then moves a path key into the `Authorization` header and
/// strips it from the URI.
pub async fn normalise(mut request: Request) -> Request {
    if let Some(uri) = collapse_slashes(request.uri()) {
        *request.uri_mut() = uri;
    }
    let Some((key, uri)) = split(request.uri()) else {
        return request;
    };
    *request.uri_mut() = uri;
    let has_key = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(from_bearer)
        .is_some();
    if !has_key && !key.is_empty() {
        match HeaderValue::from_str(&format!("Bearer {key}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            // A key that cannot be a header value cannot be valid either: no key, so 401.
            Err(_) => {
                request.headers_mut().remove(AUTHORIZATION);
            }
        }
    }
    request
}

/// The URI with runs of `/` in its path made one; `None` when there are none.
fn collapse_slashes(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.contains("//") {
        return None;
    }
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    if let Some(query) = uri.query() {
        collapsed.push('?');
        collapsed.push_str(query);
    }
    Uri::builder().path_and_query(collapsed).build().ok()
}

/// The key and the URI without `/k/<key>`; `None` when the path has no key prefix.
fn split(uri: &Uri) -> Option<(String, Uri)> {
    let rest = uri.path().strip_prefix(PREFIX)?;
    let (key, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let path_and_query = match uri.query() {
        Some(query) => format!("/{tail}?{query}"),
        None => format!("/{tail}"),
    };
    // Only the path changed, and it was valid before with more in it.
    let uri = Uri::builder().path_and_query(path_and_query).build().ok()?;
    Some((key.to_owned(), uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_and_the_rest_of_the_path_are_split() {
        let uri: Uri = "/k/sk-sd-abc/api/tags?x=1".parse().unwrap();
        let (key, rest) = split(&uri).unwrap();
        assert_eq!(key, "sk-sd-abc");
        assert_eq!(rest, "/api/tags?x=1");
        let (key, rest) = split(&"/k/sk-sd-abc".parse().unwrap()).unwrap();
        assert_eq!((key.as_str(), rest.path()), ("sk-sd-abc", "/"));
        assert!(split(&"/v1/models".parse().unwrap()).is_none());
    }

    #[test]
    fn doubled_slashes_are_collapsed() {
        let uri = collapse_slashes(&"/v1//models?x=1".parse().unwrap()).unwrap();
        assert_eq!(uri, "/v1/models?x=1");
        assert!(collapse_slashes(&"/v1/models".parse().unwrap()).is_none());
    }
}
