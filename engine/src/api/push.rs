//! Web Push: the server's VAPID public key for browsers, and saving their subscriptions
//! (seed 001 `save-vapid-subscription`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use switchyard_schemas::envelope::DataEnvelope;
use switchyard_schemas::{ErrorCode, ErrorEnvelope};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Tenant};
use super::respond::ok;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/integrations/vapid-public-key", get(public_key))
        .route(
            "/api/integrations/save-vapid-subscription",
            post(save_subscription),
        )
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VapidPublicKey {
    /// base64url of the uncompressed P-256 point, for `applicationServerKey`.
    pub public_key: String,
}

/// The server's VAPID public key, for browsers to subscribe with.
#[utoipa::path(get, path = "/api/integrations/vapid-public-key", tag = "push",
    responses(
        (status = 200, body = DataEnvelope<VapidPublicKey>),
        (status = 400, body = ErrorEnvelope, description = "no VAPID key is configured"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn public_key(
    State(state): State<AppState>,
    _tenant: Tenant,
) -> ApiResult<impl IntoResponse> {
    let private = state
        .settings
        .vapid_private_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::ConfigurationError,
                "Web Push is not configured on this server: set --vapid-private-key / VAPID_PRIVATE_KEY",
            )
        })?;
    let public_key = switchyard_actions::vapid::public_key_for(private).map_err(|e| {
        tracing::error!(error = %e, "the configured VAPID key is unusable");
        ApiError::internal()
    })?;
    Ok(ok(VapidPublicKey { public_key }))
}

/// A browser's push subscription (the `PushSubscription.toJSON()` shape).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionIn {
    pub endpoint: String,
    /// Other members browsers send (`expirationTime`) are ignored.
    pub keys: SubscriptionKeys,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    /// base64url, 65-byte uncompressed P-256 point.
    pub p256dh: String,
    /// base64url, 16 bytes.
    pub auth: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSaved {
    pub endpoint: String,
    /// False when the endpoint was already saved (its keys were refreshed).
    pub created: bool,
}

/// Save (or refresh) a push subscription for the tenant; upserts on the endpoint.
#[utoipa::path(post, path = "/api/integrations/save-vapid-subscription", tag = "push",
    request_body = SubscriptionIn,
    responses(
        (status = 201, body = DataEnvelope<SubscriptionSaved>, description = "saved"),
        (status = 200, body = DataEnvelope<SubscriptionSaved>, description = "already saved: keys refreshed"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn save_subscription(
    State(state): State<AppState>,
    tenant: Tenant,
    Json(body): Json<SubscriptionIn>,
) -> ApiResult<impl IntoResponse> {
    switchyard_actions::vapid::validate_subscription(
        &body.endpoint,
        &body.keys.p256dh,
        &body.keys.auth,
        state.settings.allow_private_targets,
    )
    .map_err(|e| ApiError::field(e.field.as_deref().unwrap_or("endpoint"), e.message))?;
    let max = state.settings.max_push_subscriptions;
    let (count, exists) = state
        .store
        .count_push_subscriptions(tenant.id, &body.endpoint)
        .await?;
    if !exists && count >= i64::from(max) {
        return Err(ApiError::quota(
            "push subscriptions",
            "--max-push-subscriptions",
            max,
        ));
    }
    let created = state
        .store
        .save_push_subscription(
            tenant.id,
            &body.endpoint,
            &body.keys.p256dh,
            &body.keys.auth,
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        ok(SubscriptionSaved {
            endpoint: body.endpoint,
            created,
        }),
    ))
}
