//! Executions: list, read (every step and every attempt), cancel; bulk resume and cancel.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use switchyard_schemas::ErrorEnvelope;
use switchyard_schemas::envelope::{DataEnvelope, ListEnvelope};
use switchyard_schemas::execution::ExecutionStatus;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, PageParams, Query, Tenant, paginate_within, parse_id};
use super::respond::{list, ok};
use crate::store::{ExecutionFilter, ExecutionRecord, PAGE_BUDGET_CHARS, StepRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/executions", get(list_executions))
        .route("/api/executions/{id}", get(get_execution))
        .route("/api/executions/{id}/cancel", post(cancel))
        .route("/api/executions/resume", post(bulk_resume))
        .route("/api/executions/cancel", post(bulk_cancel))
}

/// An execution with its steps and their attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub execution: ExecutionRecord,
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionsQuery {
    /// Only executions of this workflow.
    #[param(value_type = Option<uuid::Uuid>)]
    workflow_id: Option<String>,
    /// queued, running, waiting, succeeded, paused or cancelled.
    #[param(inline, value_type = Option<ExecutionStatus>)]
    status: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `cursor` of the previous page.
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    cursor: Option<String>,
}

/// Executions, newest first.
#[utoipa::path(get, path = "/api/executions", tag = "executions", params(ExecutionsQuery),
    responses(
        (status = 200, body = ListEnvelope<ExecutionView>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_executions(
    State(state): State<AppState>,
    tenant: Tenant,
    Query(query): Query<ExecutionsQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let workflow_id = query
        .workflow_id
        .as_deref()
        .map(|w| parse_id("workflowId", w))
        .transpose()?;
    let status = match query.status.as_deref() {
        Some(s) => Some(
            serde_json::from_value::<ExecutionStatus>(serde_json::Value::String(s.to_owned()))
                .map_err(|_| ApiError::field("status", format!("unknown status `{}`: expected queued, running, waiting, succeeded, paused or cancelled", s.chars().take(32).collect::<String>())))?,
        ),
        None => None,
    };
    let (rows, cut) = state
        .store
        .list_executions_within(
            tenant.id,
            workflow_id,
            status,
            page.after,
            page.limit + 1,
            PAGE_BUDGET_CHARS,
        )
        .await?;
    let (rows, cursor) = paginate_within(rows, cut, page, |(e, _)| e.id);
    let items = rows
        .into_iter()
        .map(|(execution, steps)| ExecutionView { execution, steps })
        .collect();
    Ok(list(items, cursor))
}

/// One execution with every step and every attempt.
#[utoipa::path(get, path = "/api/executions/{id}", tag = "executions",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = DataEnvelope<ExecutionView>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_execution(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("execution id", &id)?;
    let execution = state
        .store
        .execution(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    let steps = state.store.execution_steps(tenant.id, id).await?;
    Ok(ok(ExecutionView { execution, steps }))
}

/// Cancel an unfinished execution; a step that is running finishes, nothing runs after it.
#[utoipa::path(post, path = "/api/executions/{id}/cancel", tag = "executions",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = DataEnvelope<ExecutionView>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn cancel(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("execution id", &id)?;
    let execution = state
        .store
        .execution(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    if !crate::domain::cancellable(execution.status) {
        return Err(ApiError::conflict(format!(
            "the execution is already {}",
            execution.status
        )));
    }
    let cancelled = state
        .store
        .cancel_executions(tenant.id, &ExecutionFilter::id(id), "manual")
        .await?;
    state.executor.dispatch(&cancelled.jobs).await;
    let execution = state
        .store
        .execution(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    let steps = state.store.execution_steps(tenant.id, id).await?;
    Ok(ok(ExecutionView { execution, steps }))
}

/// Body of the bulk `POST /api/executions/resume` and `POST /api/executions/cancel`: every field
/// given must hold (none: every execution the operation applies to).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkRequest {
    /// Only executions of this workflow (another tenant's, or an unknown one, matches nothing).
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub workflow_id: Option<String>,
    /// Only executions in this status: `paused` for resume (the only resumable one); `queued`,
    /// `running`, `waiting` or `paused` for cancel (the unfinished ones).
    #[serde(default)]
    #[schema(value_type = Option<ExecutionStatus>)]
    pub status: Option<String>,
    /// Only executions created at or after this time (RFC 3339).
    #[serde(default)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only executions created at or before this time (RFC 3339).
    #[serde(default)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a bulk resume or cancel did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult {
    /// Executions resumed or cancelled by this call.
    pub count: usize,
    /// More executions matched than one call acts on (`--max-bulk-executions`, oldest first):
    /// call again for the rest.
    pub more: bool,
}

enum Bulk {
    Resume,
    Cancel,
}

/// The filter a bulk body asks for (`None`: a well-formed filter that can match nothing the call
/// acts on — a status it cannot resume or cancel, an empty time window — answered with count 0,
/// like an unknown workflow), or the 400 that explains what is wrong with the body.
fn bulk_filter(body: BulkRequest, bulk: &Bulk, limit: u32) -> ApiResult<Option<ExecutionFilter>> {
    let workflow_id = body
        .workflow_id
        .as_deref()
        .map(|w| parse_id("workflowId", w))
        .transpose()?;
    let status = match body.status.as_deref() {
        None => None,
        Some(text) => {
            let shown = text.chars().take(32).collect::<String>();
            let status = ExecutionStatus::parse(text).ok_or_else(|| {
                ApiError::field(
                    "status",
                    format!("unknown status `{shown}`: expected queued, running, waiting, succeeded, paused or cancelled"),
                )
            })?;
            let acts_on = match bulk {
                Bulk::Resume => crate::domain::resume(status, 0).is_some(),
                Bulk::Cancel => crate::domain::cancellable(status),
            };
            if !acts_on {
                return Ok(None);
            }
            Some(status)
        }
    };
    if let (Some(since), Some(until)) = (body.since, body.until)
        && since > until
    {
        return Ok(None);
    }
    Ok(Some(ExecutionFilter {
        workflow_id,
        status,
        since: body.since.map(|t| t.timestamp_millis()),
        until: body.until.map(|t| t.timestamp_millis()),
        limit: Some(limit),
        ..ExecutionFilter::default()
    }))
}

/// Resume every paused execution of the tenant that matches (oldest first, at most
/// `--max-bulk-executions` per call), each re-running the step it stopped at.
#[utoipa::path(post, path = "/api/executions/resume", tag = "executions",
    request_body(content = BulkRequest, example = json!({
        "workflowId": "0190d8c4-9b1e-7c3a-8f00-5a1b2c3d4e5f", "since": "2026-01-01T00:00:00Z"})),
    responses(
        (status = 200, body = DataEnvelope<BulkResult>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn bulk_resume(
    State(state): State<AppState>,
    tenant: Tenant,
    Json(body): Json<BulkRequest>,
) -> ApiResult<impl IntoResponse> {
    let Some(filter) = bulk_filter(body, &Bulk::Resume, state.settings.max_bulk_executions)? else {
        return Ok(ok(BulkResult {
            count: 0,
            more: false,
        }));
    };
    let resumed = state.store.resume_executions(tenant.id, &filter).await?;
    state.executor.dispatch(&resumed.jobs).await;
    Ok(ok(BulkResult {
        count: resumed.ids.len(),
        more: resumed.more,
    }))
}

/// Cancel every unfinished execution of the tenant that matches (oldest first, at most
/// `--max-bulk-executions` per call); a step that is running finishes, nothing runs after it.
#[utoipa::path(post, path = "/api/executions/cancel", tag = "executions",
    request_body(content = BulkRequest, example = json!({"status": "paused"})),
    responses(
        (status = 200, body = DataEnvelope<BulkResult>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn bulk_cancel(
    State(state): State<AppState>,
    tenant: Tenant,
    Json(body): Json<BulkRequest>,
) -> ApiResult<impl IntoResponse> {
    let Some(filter) = bulk_filter(body, &Bulk::Cancel, state.settings.max_bulk_executions)? else {
        return Ok(ok(BulkResult {
            count: 0,
            more: false,
        }));
    };
    let cancelled = state
        .store
        .cancel_executions(tenant.id, &filter, "manual")
        .await?;
    // Executions their concurrency keys may start now.
    state.executor.dispatch(&cancelled.jobs).await;
    Ok(ok(BulkResult {
        count: cancelled.ids.len(),
        more: cancelled.more,
    }))
}
