//! Executions: list, read (every step and every attempt), cancel.

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
use super::extract::{PageParams, Query, Tenant, paginate_within, parse_id};
use super::respond::{list, ok};
use crate::store::{ExecutionRecord, PAGE_BUDGET_CHARS, StepRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/executions", get(list_executions))
        .route("/api/executions/{id}", get(get_execution))
        .route("/api/executions/{id}/cancel", post(cancel))
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
    let (_, jobs) = state
        .store
        .cancel_executions(tenant.id, Some(id), None)
        .await?;
    state.executor.dispatch(&jobs).await;
    let execution = state
        .store
        .execution(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    let steps = state.store.execution_steps(tenant.id, id).await?;
    Ok(ok(ExecutionView { execution, steps }))
}
