//! Workflows (seed 001): the trigger catalog, configured workflows, configure, toggle, delete.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use switchyard_schemas::envelope::{DataEnvelope, ListEnvelope, SuccessEnvelope};
use switchyard_schemas::workflow::ToggleResult;
use switchyard_schemas::{EntityType, ErrorEnvelope, TriggerInfo, WorkflowConfig, WorkflowRecord};
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{IfMatch, Json, PageParams, Query, Tenant, paginate, parse_id};
use super::respond::{list, ok, success};
use crate::store::{StoredWorkflow, WorkflowWrite};
use crate::workflow_spec::{Revealed, Validator, to_record};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/workflows/triggers/{entity_type}", get(triggers))
        .route(
            "/api/workflows/{entity_type}/configured",
            get(list_configured),
        )
        .route("/api/workflows/configure", post(configure))
        .route(
            "/api/workflows/configured/{guid}",
            get(get_one).delete(remove),
        )
        .route(
            "/api/workflows/configured/{guid}/toggle",
            get(toggle).post(toggle),
        )
}

fn entity(text: &str) -> ApiResult<EntityType> {
    text.parse::<EntityType>()
        .map_err(|e| ApiError::field("entityType", e.to_string()))
}

fn etag(version: i64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(header::ETAG, value);
    }
    headers
}

fn record(state: &AppState, stored: &StoredWorkflow, revealed: &[Revealed]) -> WorkflowRecord {
    to_record(stored, &state.actions, &state.master_key, revealed)
}

/// Triggers available for an entity type.
#[utoipa::path(get, path = "/api/workflows/triggers/{entityType}", tag = "workflows",
    params(("entityType" = String, Path, description = "Order, Shipment, Customer or Product (any case)")),
    responses(
        (status = 200, body = ListEnvelope<TriggerInfo>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn triggers(
    _tenant: Tenant,
    Path(entity_type): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let entity_type = entity(&entity_type)?;
    let items: Vec<TriggerInfo> = switchyard_triggers::for_entity(entity_type)
        .map(|t| t.info())
        .collect();
    Ok(list(items, None))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfiguredQuery {
    /// `true` lists managed workflows as well as the rest.
    managed: Option<String>,
    /// 1–200, default 50.
    limit: Option<String>,
    /// From the previous page.
    cursor: Option<String>,
}

/// Workflows configured for an entity type.
#[utoipa::path(get, path = "/api/workflows/{entityType}/configured", tag = "workflows",
    params(("entityType" = String, Path), ConfiguredQuery),
    responses(
        (status = 200, body = ListEnvelope<WorkflowRecord>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_configured(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(entity_type): Path<String>,
    Query(query): Query<ConfiguredQuery>,
) -> ApiResult<impl IntoResponse> {
    let entity_type = entity(&entity_type)?;
    let include_managed = match query.managed.as_deref() {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(ApiError::field(
                "managed",
                format!(
                    "managed must be true or false, got `{}`",
                    other.chars().take(32).collect::<String>()
                ),
            ));
        }
    };
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let rows = state
        .store
        .list_workflows(
            tenant.id,
            entity_type,
            include_managed,
            page.after,
            page.limit + 1,
        )
        .await?;
    let (rows, cursor) = paginate(rows, page, |w| w.id);
    let items = rows.iter().map(|w| record(&state, w, &[])).collect();
    Ok(list(items, cursor))
}

/// One workflow.
#[utoipa::path(get, path = "/api/workflows/configured/{guid}", tag = "workflows",
    params(("guid" = Uuid, Path)),
    responses(
        (status = 200, body = DataEnvelope<WorkflowRecord>, headers(("ETag" = String, description = "the version, quoted"))),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_one(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(guid): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("workflow guid", &guid)?;
    let stored = state
        .store
        .workflow(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("workflow"))?;
    Ok((etag(stored.version), ok(record(&state, &stored, &[]))))
}

/// Create (no `guid`) or update (`guid`) a workflow. Updates honour `If-Match`.
#[utoipa::path(post, path = "/api/workflows/configure", tag = "workflows",
    request_body = WorkflowConfig,
    params(("If-Match" = Option<String>, Header, description = "the ETag of the version this update is based on")),
    responses(
        (status = 201, body = DataEnvelope<WorkflowRecord>, description = "created", headers(("ETag" = String), ("Location" = String))),
        (status = 200, body = DataEnvelope<WorkflowRecord>, description = "updated", headers(("ETag" = String))),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn configure(
    State(state): State<AppState>,
    tenant: Tenant,
    IfMatch(expected): IfMatch,
    Json(config): Json<WorkflowConfig>,
) -> ApiResult<impl IntoResponse> {
    let previous = match config.guid {
        Some(id) => Some(
            state
                .store
                .workflow(tenant.id, id)
                .await?
                .ok_or_else(|| ApiError::not_found("workflow"))?,
        ),
        None => None,
    };
    if previous.as_ref().is_some_and(|p| p.is_managed) {
        return Err(crate::store::WorkflowChangeError::Managed.into());
    }
    let validator = Validator {
        actions: &state.actions,
        conditions: &state.conditions,
        master_key: &state.master_key,
        tenant_id: tenant.id,
    };
    let validated = validator.validate(config, previous.as_ref())?;
    let write = WorkflowWrite {
        spec: validated.spec,
        is_active: validated.is_active,
        is_managed: false,
    };
    let (status, stored) = match previous {
        Some(previous) => {
            let stored = state
                .store
                .update_workflow(tenant.id, previous.id, expected, &write)
                .await?;
            (StatusCode::OK, stored)
        }
        None => (
            StatusCode::CREATED,
            state.store.insert_workflow(tenant.id, &write).await?,
        ),
    };
    let mut headers = etag(stored.version);
    if status == StatusCode::CREATED
        && let Ok(location) =
            HeaderValue::from_str(&format!("/api/workflows/configured/{}", stored.id))
    {
        headers.insert(header::LOCATION, location);
    }
    Ok((
        status,
        headers,
        ok(record(&state, &stored, &validated.revealed)),
    ))
}

/// Enable or disable a workflow (GET as in seed 001, or POST).
#[utoipa::path(get, path = "/api/workflows/configured/{guid}/toggle", tag = "workflows",
    params(("guid" = Uuid, Path)),
    responses(
        (status = 200, body = DataEnvelope<ToggleResult>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn toggle(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(guid): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("workflow guid", &guid)?;
    let stored = state
        .store
        .toggle_workflow(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("workflow"))?;
    Ok((
        etag(stored.version),
        ok(ToggleResult {
            guid: stored.id,
            is_active: stored.is_active,
        }),
    ))
}

/// The POST form of toggle, documented separately so the OpenAPI document lists both methods.
#[utoipa::path(post, path = "/api/workflows/configured/{guid}/toggle", tag = "workflows",
    params(("guid" = Uuid, Path)),
    responses(
        (status = 200, body = DataEnvelope<ToggleResult>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
#[allow(dead_code)]
async fn toggle_post() {}

/// Remove a workflow. Its versions stay for the executions that ran on them.
#[utoipa::path(delete, path = "/api/workflows/configured/{guid}", tag = "workflows",
    params(("guid" = Uuid, Path)),
    responses(
        (status = 200, body = SuccessEnvelope),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(guid): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("workflow guid", &guid)?;
    state.store.delete_workflow(tenant.id, id, false).await?;
    Ok(success())
}
