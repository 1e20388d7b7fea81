//! Events: `POST /api/events` ingests an entity event (idempotent on `eventId`); reads show what
//! each event matched and started.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_schemas::envelope::{DataEnvelope, ListEnvelope};
use switchyard_schemas::event::{EventAccepted, EventIn};
use switchyard_schemas::{EntityType, ErrorEnvelope};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, PageParams, Query, Tenant, paginate_within};
use super::respond::{list, ok};
use crate::store::{EventRecord, ExecutionRecord, PAGE_BUDGET_CHARS};

/// Longest entity id and event id accepted.
const MAX_ID: usize = 256;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/events", post(ingest).get(list_events))
        .route("/api/events/{eventId}", get(get_event))
}

/// An event as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// The client's id (`eventId`), or the generated one.
    pub event_id: String,
    pub id: Uuid,
    pub entity_type: String,
    pub entity_id: String,
    pub trigger: String,
    #[schema(value_type = Object)]
    pub data: Value,
    #[schema(value_type = Option<Object>)]
    pub previous: Option<Value>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub causation_id: Option<Uuid>,
    pub depth: i64,
    /// `pending` until matched, then `processed`.
    pub state: String,
    /// What matching found: `matched` (with the executions started), `notMatched` (each
    /// condition's result and any script error), `refused` (chain limits, with the reason). A
    /// store delivery older than its entity's stored version has `reason: "stale"` (nothing
    /// matched; would-be matches refused with reason `stale`).
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<Value>,
    /// Executions this event started.
    #[schema(value_type = Vec<Object>)]
    pub executions: Vec<ExecutionRecord>,
}

pub(crate) fn view(event: EventRecord, executions: Vec<ExecutionRecord>) -> EventView {
    EventView {
        event_id: event.event_key,
        id: event.id,
        entity_type: event.entity_type,
        entity_id: event.entity_id,
        trigger: event.trigger,
        data: event.data,
        previous: event.previous,
        occurred_at: event.occurred_at,
        received_at: event.received_at,
        causation_id: event.causation_id,
        depth: event.depth,
        state: event.state,
        outcome: event.outcome,
        executions,
    }
}

/// Validates an incoming event beyond its JSON shape.
pub(crate) fn validate_event(event: &EventIn) -> ApiResult<()> {
    let trigger = switchyard_triggers::resolve(event.entity_type, &event.trigger)
        .map_err(|e| ApiError::field("trigger", e.to_string()))?;
    if trigger.scheduled {
        return Err(ApiError::field(
            "trigger",
            format!(
                "`{}` fires from its schedule; it cannot be posted",
                trigger.code
            ),
        ));
    }
    if event.entity_id.trim().is_empty() || event.entity_id.len() > MAX_ID {
        return Err(ApiError::field(
            "entityId",
            format!("entityId must be 1 to {MAX_ID} characters"),
        ));
    }
    if let Some(id) = &event.event_id
        && (id.trim().is_empty() || id.len() > MAX_ID)
    {
        return Err(ApiError::field(
            "eventId",
            format!("eventId must be 1 to {MAX_ID} characters"),
        ));
    }
    Ok(())
}

/// Ingest an entity event. Matching runs off the request path; the same `eventId` twice starts
/// nothing the second time.
#[utoipa::path(post, path = "/api/events", tag = "events",
    request_body(content = EventIn, example = json!({
        "entityType": "Shipment", "trigger": "shipment_delivered", "entityId": "shp_77",
        "eventId": "carrier-evt-991", "data": {"status": "delivered", "carrier": "UPS", "weightKg": 2.5}})),
    responses(
        (status = 202, body = DataEnvelope<EventAccepted>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn ingest(
    State(state): State<AppState>,
    tenant: Tenant,
    Json(event): Json<EventIn>,
) -> ApiResult<impl IntoResponse> {
    validate_event(&event)?;
    let mut event = event;
    event.trigger = switchyard_triggers::resolve(event.entity_type, &event.trigger)
        .map(|t| t.code.to_owned())
        .map_err(|e| ApiError::field("trigger", e.to_string()))?;
    let ingested = state.executor.ingest(tenant.id, event).await?;
    Ok((
        StatusCode::ACCEPTED,
        ok(EventAccepted {
            event_id: ingested.event_key,
            duplicate: ingested.duplicate,
            id: ingested.id,
        }),
    ))
}

/// One event (by the client's `eventId` or its internal id) and the executions it started.
#[utoipa::path(get, path = "/api/events/{eventId}", tag = "events",
    params(("eventId" = String, Path)),
    responses(
        (status = 200, body = DataEnvelope<EventView>),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_event(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(event_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let mut event = state.store.event_by_key(tenant.id, &event_id).await?;
    if event.is_none()
        && let Ok(id) = Uuid::parse_str(&event_id)
    {
        event = state.store.event(tenant.id, id).await?;
    }
    let event = event.ok_or_else(|| ApiError::not_found("event"))?;
    let executions = state
        .store
        .list_executions(tenant.id, None, None, Some(event.id), None, 200)
        .await?;
    Ok(ok(view(event, executions)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct EventsQuery {
    /// Only events of this entity type (with `trigger`).
    #[param(value_type = Option<EntityType>)]
    entity_type: Option<String>,
    /// Only events of this trigger code (with `entityType`).
    trigger: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `cursor` of the previous page.
    #[param(pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$")]
    cursor: Option<String>,
}

/// The tenant's recent events, newest first. A page may hold fewer than `limit` events: it ends
/// early, with a `cursor`, once its events' JSON reaches 4 MiB (docs/limits.md).
#[utoipa::path(get, path = "/api/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, body = ListEnvelope<EventView>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_events(
    State(state): State<AppState>,
    tenant: Tenant,
    Query(query): Query<EventsQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let filter = match (&query.entity_type, &query.trigger) {
        (Some(entity), Some(trigger)) => {
            let entity: EntityType =
                entity
                    .parse()
                    .map_err(|e: switchyard_schemas::entity::UnknownEntityType| {
                        ApiError::field("entityType", e.to_string())
                    })?;
            let trigger = switchyard_triggers::resolve(entity, trigger)
                .map_err(|e| ApiError::field("trigger", e.to_string()))?;
            Some((entity.as_str(), trigger.code))
        }
        (None, None) => None,
        _ => {
            return Err(ApiError::validation(
                "give both entityType and trigger, or neither",
            ));
        }
    };
    let (rows, cut) = state
        .store
        .list_events_within(
            tenant.id,
            filter,
            page.after,
            page.limit + 1,
            PAGE_BUDGET_CHARS,
        )
        .await?;
    let (rows, cursor) = paginate_within(rows, cut, page, |e| e.id);
    Ok(list(
        rows.into_iter().map(|e| view(e, Vec::new())).collect(),
        cursor,
    ))
}
