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
use super::extract::{IfMatch, Json, PageParams, Query, Tenant, paginate_within, parse_id};
use super::respond::{list, ok, success};
use crate::store::{ExecutionFilter, PAGE_BUDGET_CHARS, StoredWorkflow, WorkflowWrite};
use crate::workflow_spec::{Revealed, Validator, to_record};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

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
        .route("/api/workflows/resume-workflow", get(resume).post(resume))
        .route("/api/workflows/test", post(test_workflow))
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
    params(("entityType" = EntityType, Path, description = "Order, Shipment, Customer or Product (any case)")),
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
    #[param(value_type = Option<bool>)]
    managed: Option<String>,
    /// 1–200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// From the previous page.
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    cursor: Option<String>,
}

/// Workflows configured for an entity type.
#[utoipa::path(get, path = "/api/workflows/{entityType}/configured", tag = "workflows",
    params(("entityType" = EntityType, Path, description = "Order, Shipment, Customer or Product (any case)"), ConfiguredQuery),
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
        None | Some("false") | Some("0") => false,
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
    let (rows, cut) = state
        .store
        .list_workflows(
            tenant.id,
            entity_type,
            include_managed,
            page.after,
            page.limit + 1,
            PAGE_BUDGET_CHARS,
        )
        .await?;
    let (rows, cursor) = paginate_within(rows, cut, page, |w| w.id);
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
    request_body(content = WorkflowConfig, example = json!({
        "name": "Delivered → ERP", "entityType": "Shipment", "triggerId": "shipment_delivered",
        "conditions": {"carrier": "UPS"}, "condition": "entity.weightKg > 1",
        "action": {"type": "webhook", "url": "https://erp.example.com/hooks/switchyard"}})),
    params(("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^[ \t]*(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})[ \t]*$"#,
        description = "the ETag of the version this update is based on (`\"3\"`), or `*`")),
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
        integration_id: None,
    };
    let (status, stored) = match previous {
        Some(previous) => {
            let stored = state
                .store
                .update_workflow(tenant.id, previous.id, expected, &write)
                .await?;
            (StatusCode::OK, stored)
        }
        None => {
            let max = state.settings.max_workflows;
            if state.store.count_workflows(tenant.id).await? >= i64::from(max) {
                return Err(ApiError::quota("workflows", "--max-workflows", max));
            }
            (
                StatusCode::CREATED,
                state
                    .store
                    .insert_workflow_with_id(tenant.id, validated.id, &write)
                    .await?,
            )
        }
    };
    // Saving a workflow re-enables the endpoints it uses (CONTRACT §5, endpoint health).
    let endpoints: Vec<String> = stored
        .spec
        .actions
        .iter()
        .filter_map(|a| {
            state
                .actions
                .get(&a.kind)
                .and_then(|action| action.endpoint(&a.params))
        })
        .collect();
    state.store.enable_endpoints(tenant.id, &endpoints).await?;
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

/// Enable or disable a workflow (GET as in seed 001, or POST). A toggle is a change like any
/// other: it writes a new version (same spec), so the ETag moves; `If-Match` is honoured.
#[utoipa::path(get, path = "/api/workflows/configured/{guid}/toggle", tag = "workflows",
    params(("guid" = Uuid, Path),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^[ \t]*(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})[ \t]*$"#,
        description = "the ETag of the version this toggle is based on (`\"3\"`), or `*`")),
    responses(
        (status = 200, body = DataEnvelope<ToggleResult>, headers(("ETag" = String, description = "the new version, quoted"))),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "stale If-Match, or a managed workflow (switched only with its integration)")),
    security(("bearer" = [])))]
async fn toggle(
    State(state): State<AppState>,
    tenant: Tenant,
    IfMatch(expected): IfMatch,
    Path(guid): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("workflow guid", &guid)?;
    let stored = toggle_and_resume(&state, tenant.id, id, expected, None, false).await?;
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
    params(("guid" = Uuid, Path),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^[ \t]*(\*|(W/)?"[0-9]{1,18}"|[0-9]{1,18})[ \t]*$"#,
        description = "the ETag of the version this toggle is based on (`\"3\"`), or `*`")),
    responses(
        (status = 200, body = DataEnvelope<ToggleResult>, headers(("ETag" = String, description = "the new version, quoted"))),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "stale If-Match, or a managed workflow (switched only with its integration)")),
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
    delete_and_cancel(&state, tenant.id, id, false).await?;
    Ok(success())
}

/// Flips a workflow on or off (or sets it, `set_to`); on again, the executions that switching it
/// off paused go on from where they stopped. The API's toggle and an integration's enable and
/// disable (for the workflows it manages, `allow_managed`) both go through here.
pub(crate) async fn toggle_and_resume(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
    expected: Option<i64>,
    set_to: Option<bool>,
    allow_managed: bool,
) -> ApiResult<StoredWorkflow> {
    let stored = state
        .store
        .toggle_workflow(tenant_id, id, expected, set_to, allow_managed)
        .await?;
    if stored.is_active {
        let filter = ExecutionFilter {
            pause_reason: Some("workflow_disabled"),
            ..ExecutionFilter::workflow(id)
        };
        let resumed = state.store.resume_executions(tenant_id, &filter).await?;
        state.executor.dispatch(&resumed.jobs).await;
    }
    Ok(stored)
}

/// Deletes a workflow and cancels its unfinished executions: the API's delete, and an
/// integration's removal for the workflows it manages (`allow_managed`).
pub(crate) async fn delete_and_cancel(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
    allow_managed: bool,
) -> ApiResult<()> {
    state
        .store
        .delete_workflow(tenant_id, id, allow_managed)
        .await?;
    // Nothing of a deleted workflow runs again, so there is nothing to release; the jobs are
    // dispatched all the same and find their executions cancelled.
    let cancelled = state
        .store
        .cancel_executions(
            tenant_id,
            &ExecutionFilter::workflow(id),
            "workflow_deleted",
        )
        .await?;
    state.executor.dispatch(&cancelled.jobs).await;
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ResumeQuery {
    /// A paused execution's id, or a workflow guid (every paused execution of it).
    #[param(required = true, value_type = uuid::Uuid)]
    workflow_id: Option<String>,
}

/// Resume a paused execution (re-running the step it stopped at), or every paused execution of a
/// workflow. GET as in seed 001, or POST.
#[utoipa::path(get, path = "/api/workflows/resume-workflow", tag = "workflows", params(ResumeQuery),
    responses(
        (status = 200, body = DataEnvelope<Resumed>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn resume(
    State(state): State<AppState>,
    tenant: Tenant,
    Query(query): Query<ResumeQuery>,
) -> ApiResult<impl IntoResponse> {
    let raw = query.workflow_id.filter(|w| !w.is_empty()).ok_or_else(|| {
        ApiError::field(
            "workflowId",
            "workflowId is required: a paused execution's id or a workflow guid",
        )
    })?;
    let id = parse_id("workflowId", &raw)?;
    let resumed = if let Some(execution) = state.store.execution(tenant.id, id).await? {
        if crate::domain::resume(execution.status, execution.current_step).is_none() {
            return Err(ApiError::conflict(format!(
                "the execution is {}, not paused",
                execution.status
            )));
        }
        state
            .store
            .resume_executions(tenant.id, &ExecutionFilter::id(id))
            .await?
    } else if state.store.workflow(tenant.id, id).await?.is_some() {
        let resumed = state
            .store
            .resume_executions(tenant.id, &ExecutionFilter::workflow(id))
            .await?;
        if resumed.ids.is_empty() {
            return Err(ApiError::conflict("the workflow has no paused executions"));
        }
        resumed
    } else {
        return Err(ApiError::not_found("execution or workflow"));
    };
    state.executor.dispatch(&resumed.jobs).await;
    Ok(ok(Resumed {
        resumed: resumed.ids,
    }))
}

/// The POST form of resume-workflow.
#[utoipa::path(post, path = "/api/workflows/resume-workflow", tag = "workflows", params(ResumeQuery),
    responses(
        (status = 200, body = DataEnvelope<Resumed>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
#[allow(dead_code)]
async fn resume_post() {}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    /// The executions resumed.
    pub resumed: Vec<uuid::Uuid>,
}

/// Body of `POST /api/workflows/test`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestRequest {
    /// A workflow as for configure (need not be saved)…
    #[serde(default)]
    pub workflow: Option<WorkflowConfig>,
    /// …or a saved workflow's guid.
    #[serde(default)]
    pub guid: Option<uuid::Uuid>,
    /// An event to try, in the `POST /api/events` shape.
    #[serde(default)]
    pub event: Option<switchyard_schemas::event::EventIn>,
    /// Replay the conditions over the tenant's last stored events of the workflow's trigger.
    #[serde(default)]
    pub backtest: Option<Backtest>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backtest {
    /// How many recent events (1–5000, default 500).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Dry run: whether an event matches (each condition's result) and the actions as they would be
/// rendered; or a backtest over stored events. Nothing is sent and nothing is stored.
#[utoipa::path(post, path = "/api/workflows/test", tag = "workflows",
    request_body(content = TestRequest, example = json!({
        "workflow": {"name": "Paid", "entityType": "Order", "triggerId": "order_paid",
            "condition": "entity.total > 100", "action": {"type": "update_status", "status": "fulfilled"}},
        "event": {"entityType": "Order", "trigger": "order_paid", "entityId": "ord_1", "data": {"total": 120}}})),
    responses(
        (status = 200, body = DataEnvelope<Object>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn test_workflow(
    State(state): State<AppState>,
    tenant: Tenant,
    Json(request): Json<TestRequest>,
) -> ApiResult<impl IntoResponse> {
    let spec = match (request.workflow, request.guid) {
        (Some(config), None) => {
            let validator = Validator {
                actions: &state.actions,
                conditions: &state.conditions,
                master_key: &state.master_key,
                tenant_id: tenant.id,
            };
            validator.validate(config, None)?.spec
        }
        (None, Some(guid)) => {
            state
                .store
                .workflow(tenant.id, guid)
                .await?
                .ok_or_else(|| ApiError::not_found("workflow"))?
                .spec
        }
        _ => return Err(ApiError::validation("give either `workflow` or `guid`")),
    };
    let report = super::dry_run::DryRun {
        state: &state,
        tenant_id: tenant.id,
        spec: &spec,
    };
    let answer = match (request.event, request.backtest) {
        (Some(event), None) => {
            super::events::validate_event(&event)?;
            report.try_event(event).await?
        }
        (None, Some(backtest)) => {
            let limit = backtest.limit.unwrap_or(500);
            if !(1..=5000).contains(&limit) {
                return Err(ApiError::field(
                    "backtest",
                    "backtest.limit must be 1 to 5000",
                ));
            }
            report.backtest(limit).await?
        }
        _ => return Err(ApiError::validation("give either `event` or `backtest`")),
    };
    Ok(ok(answer))
}
