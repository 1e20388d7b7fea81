//! Schedule ticks of a workflow: which ticks fired and which were skipped (and why), so a user can
//! see what a downtime cost.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchyard_schemas::ErrorEnvelope;
use switchyard_schemas::envelope::ListEnvelope;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{PageParams, Query, Tenant, parse_id};
use super::respond::list;
use crate::store::{TickRecord, from_ms};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/workflows/configured/{guid}/ticks", get(list_ticks))
}

/// One tick of a workflow's schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TickView {
    /// When the tick was due (the event's `occurredAt` and `scheduledAt`).
    pub tick_at: DateTime<Utc>,
    /// `fired` (an event was stored and matched) or `skipped`.
    pub status: &'static str,
    /// Why a skipped tick was not fired.
    pub reason: Option<String>,
    /// The tick's event (`GET /api/events/{eventId}`), for a fired tick.
    pub event_id: Option<String>,
    /// The workflow version whose schedule it was.
    pub workflow_version: i64,
    /// When a scheduler recorded it.
    pub recorded_at: DateTime<Utc>,
}

impl From<TickRecord> for TickView {
    fn from(t: TickRecord) -> Self {
        TickView {
            tick_at: from_ms(t.tick_at),
            status: if t.skipped { "skipped" } else { "fired" },
            reason: t.reason,
            event_id: t.event_key,
            workflow_version: t.workflow_version,
            recorded_at: from_ms(t.recorded_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicksQuery {
    /// 1 to 200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
}

/// A schedule workflow's recorded ticks, fired and skipped, newest first.
#[utoipa::path(get, path = "/api/workflows/configured/{guid}/ticks", tag = "workflows",
    params(("guid" = uuid::Uuid, Path), TicksQuery),
    responses(
        (status = 200, body = ListEnvelope<TickView>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_ticks(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(guid): Path<String>,
    Query(query): Query<TicksQuery>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("workflow guid", &guid)?;
    let limit = PageParams {
        limit: query.limit,
        cursor: None,
    }
    .page()?
    .limit;
    // Another tenant's workflow is "not found", the same as one that does not exist.
    state
        .store
        .workflow(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("workflow"))?;
    let ticks = state.store.list_ticks(tenant.id, id, limit).await?;
    Ok(list(ticks.into_iter().map(TickView::from).collect(), None))
}
