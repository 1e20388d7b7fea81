//! Unauthenticated operational endpoints: liveness, readiness and Prometheus metrics.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use switchyard_schemas::ErrorCode;
use utoipa::ToSchema;

use super::error::ApiError;
use super::respond::ok;
use super::{ApiResult, AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "process up", body = inline(switchyard_schemas::envelope::DataEnvelope<Health>))))]
async fn healthz() -> impl IntoResponse {
    ok(Health { status: "ok" })
}

/// The database (and the queue, when there is one) answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "ready", body = inline(switchyard_schemas::envelope::DataEnvelope<Health>)),
        (status = 503, description = "a dependency is down", body = switchyard_schemas::ErrorEnvelope)))]
async fn readyz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(ErrorCode::Unavailable, "the database is not reachable").with_retry_after(2)
    })?;
    state.executor.dispatch.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(ErrorCode::Unavailable, "the queue is not reachable").with_retry_after(2)
    })?;
    Ok(ok(Health { status: "ready" }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // No query here: the execution gauges are refreshed in the background
    // (`telemetry::refresh_execution_gauges`), so a scrape, which needs no key, costs only the
    // rendering of what the recorder holds.
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
