//! The admin dashboard at `/dashboard`: one page, one script and one stylesheet, built into the
//! binary so it works with no network beyond Seadragon itself. The page holds no privilege of
//! its own: it calls the admin API with the admin key the user signs in with.
//!
//! The script and stylesheet are served under names that carry a hash of their content, so they
//! can be cached for a year and a new binary still gets its own; the page itself is `no-cache`.
//! The Content-Security-Policy allows only this origin and no inline script or style.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::params::PathParams;
use super::state::AppState;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// Only this origin, no inline code: what the page needs and no more.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";
/// Asset names change with their content, so a cached copy is never stale.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The page with its asset links filled in, and the versioned asset names.
struct Assets {
    page: String,
    script: String,
    style: String,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let script = format!("app.{}.js", fingerprint(SCRIPT));
    let style = format!("style.{}.css", fingerprint(STYLE));
    let page = PAGE
        .replace("{{script}}", &format!("/dashboard/{script}"))
        .replace("{{style}}", &format!("/dashboard/{style}"));
    Assets {
        page,
        script,
        style,
    }
});

/// The first 12 hex digits of the content's SHA-256: enough to tell versions apart.
fn fingerprint(content: &str) -> String {
    Sha256::digest(content.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `/dashboard` and its assets; not API, so not in the OpenAPI document.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route(
            "/dashboard/",
            get(|| async { Redirect::permanent("/dashboard") }),
        )
        .route("/dashboard/{file}", get(asset))
}

fn respond(content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static(cache)),
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // The page URL carries nothing secret, but other hosts need not learn it either.
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    (headers, body).into_response()
}

async fn page() -> Response {
    // `no-cache` revalidates on every visit, so a new binary's asset names are picked up.
    respond("text/html; charset=utf-8", "no-cache", &ASSETS.page)
}

async fn asset(PathParams(file): PathParams<String>) -> Result<Response, ApiError> {
    let assets = &*ASSETS;
    if file == assets.script {
        Ok(respond("text/javascript; charset=utf-8", IMMUTABLE, SCRIPT))
    } else if file == assets.style {
        Ok(respond("text/css; charset=utf-8", IMMUTABLE, STYLE))
    } else {
        Err(ApiError::NotFound(format!(
            "no dashboard asset '{file}'; open /dashboard"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_the_versioned_assets_it_serves() {
        let assets = &*ASSETS;
        assert!(
            assets
                .page
                .contains(&format!("/dashboard/{}", assets.script))
        );
        assert!(
            assets
                .page
                .contains(&format!("/dashboard/{}", assets.style))
        );
        assert!(!assets.page.contains("{{"), "a placeholder is left");
        assert_eq!(assets.script.len(), "app..js".len() + 12);
    }
}
