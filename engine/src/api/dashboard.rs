//! The merchant dashboard: static HTML, CSS and ES modules from `engine/web/`, compiled into the
//! binary and served at `/`. It is a client of the public JSON API like any other (bearer key,
//! same endpoints), so nothing here is part of the API or its OpenAPI document.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// Nothing is fetched from anywhere but this server; no inline script or style; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'; object-src 'none'";

/// One embedded file: where it is served, its media type, its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $content_type:expr, $file:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_str!(concat!("../../web/", $file)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("/", HTML, "index.html"),
    asset!("/assets/app.css", "text/css; charset=utf-8", "app.css"),
    asset!("/assets/favicon.svg", "image/svg+xml", "favicon.svg"),
    asset!("/assets/app.js", JS, "app.js"),
    asset!("/assets/api.js", JS, "api.js"),
    asset!("/assets/dom.js", JS, "dom.js"),
    asset!("/assets/workflows.js", JS, "workflows.js"),
    asset!("/assets/workflow_form.js", JS, "workflow_form.js"),
    asset!("/assets/test_panel.js", JS, "test_panel.js"),
    asset!("/assets/executions.js", JS, "executions.js"),
    asset!("/assets/events.js", JS, "events.js"),
    asset!("/assets/integrations.js", JS, "integrations.js"),
    asset!("/assets/condition_editor.js", JS, "condition_editor.js"),
    asset!("/assets/flow_control.js", JS, "flow_control.js"),
    asset!("/assets/bulk.js", JS, "bulk.js"),
    asset!("/assets/store_form.js", JS, "store_form.js"),
];

pub fn router() -> Router<AppState> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { serve(asset) }))
    })
}

fn serve(asset: &'static Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary: revalidate rather than keep a stale module graph.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_pages_import_is_served() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in asset.body.lines() {
                let Some(rest) = line.trim().strip_prefix("import ") else {
                    continue;
                };
                let Some(from) = rest.split(" from ").nth(1) else {
                    continue;
                };
                let module = from.trim_matches(|c| c == '\'' || c == '"' || c == ';');
                let served = module.replace("./", "/assets/");
                assert!(
                    ASSETS.iter().any(|a| a.path == served),
                    "{} imports {module}, which is not served",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        let html = ASSETS[0].body;
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<style") && !html.contains(" style="));
        assert!(!html.contains("<script>"), "inline scripts break the CSP");
    }
}
