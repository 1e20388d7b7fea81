//! The tenant's own settings: where `recipient: merchant` emails go.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use switchyard_schemas::ErrorEnvelope;
use switchyard_schemas::envelope::DataEnvelope;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Tenant};
use super::respond::ok;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/tenant/settings", get(read).put(update))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSettings {
    pub tenant_id: uuid::Uuid,
    pub name: String,
    /// Where `send_email` steps with `recipient: merchant` go.
    pub notification_email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSettingsIn {
    /// An email address (surrounding blanks are trimmed), or null to clear it.
    #[schema(format = Email)]
    pub notification_email: Option<String>,
}

async fn current(state: &AppState, tenant: Tenant) -> ApiResult<TenantSettings> {
    let record = state
        .store
        .tenant(tenant.id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(TenantSettings {
        tenant_id: record.id,
        name: record.name,
        notification_email: record.notification_email,
    })
}

/// The tenant's settings.
#[utoipa::path(get, path = "/api/tenant/settings", tag = "tenant",
    responses((status = 200, body = DataEnvelope<TenantSettings>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn read(State(state): State<AppState>, tenant: Tenant) -> ApiResult<impl IntoResponse> {
    Ok(ok(current(&state, tenant).await?))
}

/// Change the tenant's settings.
#[utoipa::path(put, path = "/api/tenant/settings", tag = "tenant", request_body = TenantSettingsIn,
    responses((status = 200, body = DataEnvelope<TenantSettings>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    tenant: Tenant,
    Json(body): Json<TenantSettingsIn>,
) -> ApiResult<impl IntoResponse> {
    // Blank is not an address (null clears it), as the document's `format: email` says.
    let email = body.notification_email.map(|e| e.trim().to_owned());
    if let Some(email) = &email {
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',');
        if !valid {
            return Err(ApiError::field(
                "notificationEmail",
                format!(
                    "`{}` is not an email address",
                    email.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    state
        .store
        .set_notification_email(tenant.id, email.as_deref())
        .await?;
    Ok(ok(current(&state, tenant).await?))
}
