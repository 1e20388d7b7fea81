//! The HTTP API (axum). One module per resource, each with its DTOs, handlers and `router()`;
//! this file only merges them and adds the layers every route shares.

mod dashboard;
mod dry_run;
pub mod error;
mod events;
mod executions;
pub mod extract;
mod health;
mod integrations;
mod limits;
mod openapi;
mod push;
pub mod respond;
mod schedules;
mod tenant;
mod workflows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use switchyard_actions::ActionRegistry;
use switchyard_schemas::ErrorCode;
use switchyard_triggers::ConditionEngine;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::secrets::MasterKey;
use crate::store::Store;
pub use error::{ApiError, ApiResult};
pub use limits::TenantRateLimiter;

/// Bodies over this are refused with 413 (CONTRACT §3).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub actions: Arc<ActionRegistry>,
    pub conditions: Arc<ConditionEngine>,
    pub master_key: MasterKey,
    pub limiter: Arc<TenantRateLimiter>,
    pub metrics: PrometheusHandle,
    pub executor: Arc<crate::executor::Executor>,
    pub settings: Arc<crate::config::Settings>,
    /// API keys of concurrent requests, looked up together.
    pub keys: KeyLookup,
    /// API keys recently looked up and not found.
    pub unknown: Arc<extract::NegativeCache>,
    /// Inbound integration ids recently looked up and not found.
    pub unknown_integrations: Arc<extract::NegativeCache>,
}

/// How long an unknown API key or integration id is answered from memory.
pub const NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(30);
/// At most this many unknown ids of each kind are remembered.
pub const NEGATIVE_CACHE_CAPACITY: usize = 10_000;

/// Batched API key lookups ([`crate::executor::batch`]): one query for the keys of all requests
/// that arrive together, instead of one each.
pub type KeyLookup = crate::executor::batch::Batcher<
    String,
    crate::store::StoreResult<Option<crate::store::ApiKeyRecord>>,
>;

/// Starts the key lookup task of an API.
pub fn key_lookup(store: Store) -> KeyLookup {
    crate::executor::batch::Batcher::start_parallel(2, move |keys: Vec<String>| {
        let store = store.clone();
        async move {
            match store.find_api_keys(&keys).await {
                Ok(found) => found.into_iter().map(Ok).collect(),
                Err(error) => {
                    crate::executor::batch::answer_each(&keys, error, |key| {
                        let (store, key) = (store.clone(), key.clone());
                        async move { store.find_api_key(&key).await }
                    })
                    .await
                }
            }
        }
    })
}

/// Every route of the API with the shared layers.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(health::router())
        .merge(dashboard::router())
        .merge(openapi::router())
        .merge(workflows::router())
        .merge(events::router())
        .merge(executions::router())
        .merge(push::router())
        .merge(integrations::router())
        .merge(tenant::router())
        .merge(schedules::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.settings.request_timeout,
            request_timeout,
        ))
        .layer(middleware::from_fn(refuse_nul_in_uri))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::internal().into_response()
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that method",
    )
}

/// A request (its body included: handlers read it) that takes longer than `--request-timeout` is
/// answered 408 `REQUEST_TIMEOUT`; dropping the handler's future stops its work. Bounds what a
/// client that trickles a body, or a request stuck behind a slow dependency, can hold.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request took longer than {} (--request-timeout)",
                    humantime::format_duration(limit)
                ),
            )
            .into_response();
            // The rest of the body may still be on its way: the connection cannot be reused.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// A path or query string that decodes to U+0000 (`%00`) is refused before any handler: an id
/// holding it cannot exist (bodies refuse it too), and PostgreSQL would fail on the parameter.
async fn refuse_nul_in_uri(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let has_nul = |text: &str| {
        text.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return extract::nul_error().into_response();
    }
    next.run(request).await
}

/// The method as a metrics label: the standard methods by name, anything else `OTHER`, so a
/// client inventing methods cannot add series (every label value is a series kept for ever).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Request counts and latencies by route and status, for `/metrics`. The route is the matched
/// pattern (`/api/workflows/configured/{guid}`), or `unmatched` for every path no route knows,
/// so neither ids nor made-up paths become label values.
async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed: Duration = started.elapsed();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("switchyard_http_requests_total", &labels).increment(1);
    metrics::histogram!("switchyard_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    response
}
