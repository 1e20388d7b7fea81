//! Store integrations (seed 001 + CONTRACT §4/§6): the provider catalog, configuring (with the
//! credential check against the store), listing, disabling and removing integrations, and the
//! unauthenticated inbound endpoint stores deliver their webhooks to.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use switchyard_actions::http::GuardedClient;
use switchyard_schemas::envelope::{DataEnvelope, ListEnvelope, SuccessEnvelope};
use switchyard_schemas::{ErrorCode, ErrorEnvelope};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::events::validate_event;
use super::extract::{
    Json, PageParams, Query, Tenant, contains_nul, nul_error, paginate, parse_id,
};
use super::respond::{list, ok, success};
use super::workflows::{delete_and_cancel, toggle_and_resume};
use crate::integrations::{
    self, CredentialField, Credentials, IntegrationSettings, Provider, SettingInfo, Topic,
    VerifyError,
};
use crate::secrets::SecretScope;
use crate::store::{
    ConfiguredIntegration, IntegrationRecord, NewIntegration, StoreError, WorkflowWrite,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/integrations", get(list_integrations))
        .route("/api/integrations/providers", get(providers))
        .route("/api/integrations/provider/configure", post(configure))
        .route(
            "/api/integrations/provider/disable/{id}",
            get(disable).post(disable),
        )
        .route(
            "/api/integrations/providers/ecommerce/remove/{id}",
            delete(remove),
        )
        .route("/api/integrations/inbound/{integrationGuid}", post(inbound))
}

/// A provider of the catalog.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    /// Stable id (UUID v5 of the code); the code is accepted wherever the id is.
    pub provider_id: Uuid,
    pub code: &'static str,
    pub name: &'static str,
    pub provider_type: &'static str,
    pub credentials: Vec<CredentialField>,
    pub settings: Vec<SettingInfo>,
    /// How credentials are checked when the integration is configured.
    pub verification: &'static str,
    /// How inbound webhooks are authenticated.
    pub inbound_signature: &'static str,
    /// Inbound topics and the triggers they emit.
    pub topics: Vec<Topic>,
}

fn provider_view(provider: &dyn Provider) -> ProviderView {
    ProviderView {
        provider_id: provider.provider_id(),
        code: provider.code(),
        name: provider.name(),
        provider_type: provider.provider_type(),
        credentials: provider.credential_fields().to_vec(),
        settings: integrations::SETTINGS.to_vec(),
        verification: provider.verification(),
        inbound_signature: provider.inbound_signature(),
        topics: provider.topics().to_vec(),
    }
}

/// Body of `POST /api/integrations/provider/configure` (seed 001).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigureIn {
    /// The provider's id or code (`shopify`, `woocommerce`, `custom`).
    pub provider_id: String,
    /// `ecommerce`; checked when given.
    #[serde(default)]
    pub provider_type: Option<String>,
    #[serde(default)]
    pub credentials: Credentials,
    #[serde(default)]
    pub settings: Option<IntegrationSettings>,
}

/// Answer of configure: seed 001's fields plus where the store should deliver webhooks.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Configured {
    pub guid: Uuid,
    /// The provider's code.
    pub provider: &'static str,
    pub provider_id: Uuid,
    pub status: String,
    pub connected_at: chrono::DateTime<chrono::Utc>,
    /// The URL to register in the store as the webhook delivery URL.
    pub inbound_url: String,
    /// `custom` only, when the secret was generated: shown this once, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_secret: Option<String>,
}

/// A configured integration; credentials are never shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationView {
    pub guid: Uuid,
    pub provider: String,
    pub provider_id: Uuid,
    pub provider_type: String,
    /// `active` or `disabled`.
    pub status: String,
    pub store_url: Option<String>,
    pub settings: IntegrationSettings,
    /// The last 4 characters of apiKey (keys of 8 characters or more), to tell keys apart.
    pub api_key_last4: Option<String>,
    pub connected_at: chrono::DateTime<chrono::Utc>,
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
    pub inbound_url: String,
}

/// Answer of disable (seed 001).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisableResult {
    pub guid: Uuid,
    pub status: String,
}

/// One event an inbound delivery ingested.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundEventResult {
    pub event_id: String,
    /// A redelivery: stored before, started nothing now.
    pub duplicate: bool,
    /// Older than the version of its entity already stored (the resource's `updated_at` /
    /// `date_modified_gmt`): stored with reason `stale`, changed and started nothing.
    pub stale: bool,
}

/// Answer of an inbound delivery: the events it stood for (none for a ping, an ignored topic, a
/// topic the settings turn off, or an update that changed nothing the triggers watch).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundResult {
    pub events: Vec<InboundEventResult>,
    /// The same topic and body were accepted before (within 7 days), under this or another
    /// delivery id: nothing was ingested now; `events` are the first delivery's.
    pub duplicate: bool,
    /// The delivery is older than the version of its entity already stored: it changed nothing
    /// and started nothing (each event is recorded with reason `stale`).
    pub stale: bool,
}

/// The provider catalog.
#[utoipa::path(get, path = "/api/integrations/providers", tag = "integrations",
    responses(
        (status = 200, body = ListEnvelope<ProviderView>),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn providers(_tenant: Tenant) -> impl IntoResponse {
    list(integrations::providers().map(provider_view).collect(), None)
}

/// Configure an integration: the credentials are checked against the store, then stored
/// encrypted. Configuring a store whose integration is disabled enables that integration again
/// (same guid and inbound URL, the new credentials and settings): 200 instead of 201.
#[utoipa::path(post, path = "/api/integrations/provider/configure", tag = "integrations",
    request_body = ConfigureIn,
    responses(
        (status = 201, body = DataEnvelope<Configured>, description = "a new integration"),
        (status = 200, body = DataEnvelope<Configured>, description = "the store's disabled integration, enabled again"),
        (status = 400, body = ErrorEnvelope, description = "VALIDATION_ERROR, or CONFIGURATION_ERROR: the store rejected the credentials or could not be reached"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "an active integration of this provider and store exists")),
    security(("bearer" = [])))]
async fn configure(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    Json(body): Json<ConfigureIn>,
) -> ApiResult<impl IntoResponse> {
    let provider = integrations::find(&body.provider_id).ok_or_else(|| {
        ApiError::field(
            "providerId",
            format!(
                "unknown provider `{}`: expected one of {}",
                body.provider_id.chars().take(64).collect::<String>(),
                integrations::providers()
                    .map(|p| p.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    if let Some(kind) = &body.provider_type
        && !kind.trim().eq_ignore_ascii_case(provider.provider_type())
    {
        return Err(ApiError::field(
            "providerType",
            format!(
                "`{}` is of providerType `{}`",
                provider.code(),
                provider.provider_type()
            ),
        ));
    }
    let mut credentials = body.credentials;
    let generated = integrations::validate_credentials(
        provider,
        &mut credentials,
        state.settings.allow_private_targets,
    )
    .map_err(|e| ApiError::field(&format!("credentials.{}", e.field), e.message))?;
    let settings = body.settings.unwrap_or_default();

    let client = GuardedClient::new(state.settings.allow_private_targets).map_err(|e| {
        tracing::error!(error = %e, "cannot build the outbound HTTP client");
        ApiError::internal()
    })?;
    provider
        .verify(&client, &credentials)
        .await
        .map_err(configuration_error)?;

    let plain = serde_json::to_string(&credentials).map_err(|e| {
        tracing::error!(error = %e, "serializing credentials");
        ApiError::internal()
    })?;
    let id = Uuid::now_v7();
    let seal = |id: Uuid| {
        state
            .master_key
            .encrypt(&plain, &SecretScope::integration(tenant.id, id))
    };
    let new = NewIntegration {
        id,
        provider: provider.code().to_owned(),
        store_url: credentials.store_url.clone(),
        credentials: seal(id),
        settings: serde_json::to_value(settings).unwrap_or_default(),
    };
    // A disabled integration of this store is enabled again, under its own guid and inbound URL
    // (the store's webhooks keep pointing at it), with the credentials just verified.
    let (status, record) = match state
        .store
        .configure_integration(tenant.id, &new, seal)
        .await?
    {
        ConfiguredIntegration::Created(record) => (StatusCode::CREATED, record),
        ConfiguredIntegration::Reenabled(record) => (StatusCode::OK, record),
        ConfiguredIntegration::AlreadyActive => {
            return Err(ApiError::conflict("Integration already configured").with_details(
                serde_json::json!({"provider": provider.code(), "storeUrl": credentials.store_url}),
            ));
        }
    };
    sync_managed_workflows(&state, &record).await?;
    let revealed = generated
        .contains(&"apiSecret")
        .then(|| credentials.api_secret.clone())
        .flatten();
    Ok((
        status,
        ok(Configured {
            guid: record.id,
            provider: provider.code(),
            provider_id: provider.provider_id(),
            status: record.status,
            connected_at: record.connected_at,
            inbound_url: inbound_url(&headers, record.id),
            api_secret: revealed,
        }),
    ))
}

fn configuration_error(e: VerifyError) -> ApiError {
    let error = ApiError::new(ErrorCode::ConfigurationError, e.to_string());
    match e {
        VerifyError::Rejected { status } => error.with_details(serde_json::json!({
            "reason": format!("the store answered {status} to the credential check"),
        })),
        _ => error,
    }
}

/// `/api/integrations/inbound/{id}`, absolute when the request named its host.
fn inbound_url(headers: &HeaderMap, id: Uuid) -> String {
    let path = format!("/api/integrations/inbound/{id}");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '@']));
    let Some(host) = host else {
        return path;
    };
    // Behind a TLS-terminating proxy the request arrived as http; the proxy says what it was.
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}{path}")
}

fn open_credentials(state: &AppState, record: &IntegrationRecord) -> ApiResult<Credentials> {
    let plain = state
        .master_key
        .decrypt(
            &record.credentials,
            &SecretScope::integration(record.tenant_id, record.id),
        )
        .map_err(|e| {
            tracing::error!(integration = %record.id, error = %e, "integration credentials do not decrypt");
            ApiError::internal()
        })?;
    serde_json::from_str(&plain).map_err(|e| {
        tracing::error!(integration = %record.id, error = %e, "integration credentials are corrupt");
        ApiError::internal()
    })
}

/// Brings the workflows an integration manages in line with it (CONTRACT §8): with
/// `pushTracking` on (for a provider with a store to send tracking to), one tracking workflow,
/// switched on while the integration is active and off while it is disabled; otherwise none.
async fn sync_managed_workflows(state: &AppState, record: &IntegrationRecord) -> ApiResult<()> {
    let provider = integrations::find(&record.provider).filter(|p| p.takes_tracking());
    let existing = state
        .store
        .managed_workflows(record.tenant_id, record.id)
        .await?;
    let Some(provider) = provider.filter(|_| settings_of(record).push_tracking) else {
        for workflow in existing {
            delete_and_cancel(state, record.tenant_id, workflow.id, true).await?;
        }
        return Ok(());
    };
    if existing.is_empty() {
        let spec =
            integrations::tracking_workflow(provider, record.id, record.store_url.as_deref())
                .map_err(|e| {
                    tracing::error!(error = %e, "the tracking workflow document does not parse");
                    ApiError::internal()
                })?;
        let write = WorkflowWrite {
            spec,
            is_active: Some(record.is_active()),
            is_managed: true,
            integration_id: Some(record.id),
        };
        return match state.store.insert_workflow(record.tenant_id, &write).await {
            // A configure racing this one installed it first (one live managed workflow per
            // integration, a unique index): theirs stands.
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    for workflow in existing {
        toggle_and_resume(
            state,
            record.tenant_id,
            workflow.id,
            None,
            Some(record.is_active()),
            true,
        )
        .await?;
    }
    Ok(())
}

fn settings_of(record: &IntegrationRecord) -> IntegrationSettings {
    serde_json::from_value(record.settings.clone()).unwrap_or_else(|e| {
        tracing::warn!(integration = %record.id, error = %e, "unreadable settings; using defaults");
        IntegrationSettings::default()
    })
}

fn view(state: &AppState, headers: &HeaderMap, record: IntegrationRecord) -> IntegrationView {
    let last4 = open_credentials(state, &record)
        .ok()
        .and_then(|c| c.api_key)
        .filter(|key| key.chars().count() >= 8)
        .map(|key| {
            let skip = key.chars().count() - 4;
            key.chars().skip(skip).collect()
        });
    let provider = integrations::find(&record.provider);
    IntegrationView {
        guid: record.id,
        provider_id: provider.map_or_else(
            || integrations::provider_guid(&record.provider),
            |p| p.provider_id(),
        ),
        provider_type: provider
            .map_or(integrations::ECOMMERCE, |p| p.provider_type())
            .to_owned(),
        status: record.status.clone(),
        store_url: record.store_url.clone(),
        settings: settings_of(&record),
        api_key_last4: last4,
        connected_at: record.connected_at,
        disabled_at: record.disabled_at,
        inbound_url: inbound_url(headers, record.id),
        provider: record.provider,
    }
}

/// The tenant's configured integrations, oldest first.
#[utoipa::path(get, path = "/api/integrations", tag = "integrations",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, pattern = r"^([A-Za-z0-9_-]{21}[AQgw])?$", description = "the `cursor` of the previous page")),
    responses(
        (status = 200, body = ListEnvelope<IntegrationView>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_integrations(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    Query(query): Query<PageParams>,
) -> ApiResult<impl IntoResponse> {
    let page = query.page()?;
    let rows = state
        .store
        .list_integrations(tenant.id, page.after, page.limit + 1)
        .await?;
    let (rows, cursor) = paginate(rows, page, |r| r.id);
    Ok(list(
        rows.into_iter()
            .map(|r| view(&state, &headers, r))
            .collect(),
        cursor,
    ))
}

/// Disable an integration (GET as in seed 001, or POST): its inbound webhooks are refused with
/// 409; its credentials are kept.
#[utoipa::path(get, path = "/api/integrations/provider/disable/{id}", tag = "integrations",
    params(("id" = Uuid, Path, description = "the integration's guid")),
    responses(
        (status = 200, body = DataEnvelope<DisableResult>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn disable(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("integration id", &id)?;
    let record = state
        .store
        .disable_integration(tenant.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Integration"))?;
    sync_managed_workflows(&state, &record).await?;
    Ok(ok(DisableResult {
        guid: record.id,
        status: record.status,
    }))
}

/// The POST form of disable, documented separately so the OpenAPI document lists both methods.
#[utoipa::path(post, path = "/api/integrations/provider/disable/{id}", tag = "integrations",
    params(("id" = Uuid, Path, description = "the integration's guid")),
    responses(
        (status = 200, body = DataEnvelope<DisableResult>),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
#[allow(dead_code)]
async fn disable_post() {}

/// Remove an integration for good, credentials included.
#[utoipa::path(delete, path = "/api/integrations/providers/ecommerce/remove/{id}", tag = "integrations",
    params(("id" = Uuid, Path, description = "the integration's guid")),
    responses(
        (status = 200, body = SuccessEnvelope),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id("integration id", &id)?;
    // Its managed workflows go with it (none are found for another tenant's integration).
    for workflow in state.store.managed_workflows(tenant.id, id).await? {
        delete_and_cancel(&state, tenant.id, workflow.id, true).await?;
    }
    if state.store.delete_integration(tenant.id, id).await? {
        Ok(success())
    } else {
        Err(ApiError::not_found("Integration"))
    }
}

/// The request body exactly as sent: signatures are over these bytes (WooCommerce's PHP escapes
/// do not survive a parse and re-serialize). Over 1 MiB is `PAYLOAD_TOO_LARGE`.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(ErrorCode::PayloadTooLarge, "the request body is over 1 MiB")
                } else {
                    ApiError::validation(rejection.body_text())
                }
            })
    }
}

/// A store's webhook delivery. No bearer key: the provider's signature over the raw body
/// authenticates it, under the credentials of the integration the URL names.
#[utoipa::path(post, path = "/api/integrations/inbound/{integrationGuid}", tag = "integrations",
    params(("integrationGuid" = Uuid, Path)),
    request_body(content = Object, description = "the provider's webhook body, as it sends it"),
    responses(
        (status = 200, body = DataEnvelope<InboundResult>),
        (status = 400, body = ErrorEnvelope, description = "signed, but not a body this provider sends"),
        (status = 401, body = ErrorEnvelope, description = "missing or bad signature; nothing was ingested"),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope, description = "the integration is disabled"),
        (status = 413, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn inbound(
    State(state): State<AppState>,
    Path(guid): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<impl IntoResponse> {
    let not_found = || ApiError::not_found("Integration");
    // Before authentication: a malformed id costs no query, an id found unknown recently none
    // either (see `NegativeCache`).
    let id = Uuid::parse_str(guid.trim()).map_err(|_| not_found())?;
    if state.unknown_integrations.contains(id.as_bytes()) {
        return Err(not_found());
    }
    let Some(record) = state.store.inbound_integration(id).await? else {
        state.unknown_integrations.insert(id.as_bytes());
        return Err(not_found());
    };
    if !record.is_active() {
        return Err(ApiError::conflict(
            "the integration is disabled; configure it again to receive webhooks",
        ));
    }
    let provider = integrations::find(&record.provider).ok_or_else(|| {
        tracing::error!(integration = %record.id, provider = %record.provider, "unknown provider");
        ApiError::conflict("this integration's provider is no longer supported")
    })?;
    if provider.is_unsigned_ping(&headers, &body) {
        return Ok(ok(InboundResult {
            events: Vec::new(),
            duplicate: false,
            stale: false,
        }));
    }
    let credentials = open_credentials(&state, &record)?;
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = provider.authenticate_inbound(&headers, &body, &credentials, now) {
        tracing::warn!(integration = %record.id, reason = %e, "inbound webhook refused");
        metrics::counter!("switchyard_inbound_webhooks_total", "provider" => provider.code(), "outcome" => "unauthorized").increment(1);
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!("webhook signature rejected: {e}"),
        ));
    }
    // Counted only once authenticated, so nobody without the secret can spend the tenant's budget.
    state.limiter.check(record.tenant_id)?;
    let mut translated = provider
        .translate(&headers, &body, &settings_of(&record))
        .map_err(|e| ApiError::validation(e.to_string()))?;
    // Which store an entity came from: what a managed workflow of this integration matches on.
    for inbound in &mut translated {
        inbound.event.data.insert(
            integrations::INTEGRATION_FIELD.to_owned(),
            serde_json::Value::String(record.id.to_string()),
        );
    }
    // Before anything is looked up with them: PostgreSQL cannot take U+0000 in a parameter.
    if translated
        .iter()
        .any(|inbound| contains_nul_event(&inbound.event))
    {
        return Err(nul_error());
    }
    let mut events = integrations::settle(&state.store, record.tenant_id, translated).await?;
    // Every event is checked before any is ingested, so a bad one leaves no partial delivery.
    for (event, _) in &mut events {
        validate_event(event)?;
        event.trigger = switchyard_triggers::resolve(event.entity_type, &event.trigger)
            .map(|t| t.code.to_owned())
            .map_err(|e| ApiError::field("trigger", e.to_string()))?;
    }
    // A captured delivery replayed under a fresh delivery id (which the signature does not
    // cover) is recognised by its topic and body: it starts nothing.
    let digest = integrations::delivery_digest(provider.delivery_topic(&headers), &body);
    let keys: Vec<String> = events
        .iter()
        .filter_map(|(e, _)| e.event_id.clone())
        .collect();
    if let Some(earlier) = state
        .store
        .claim_delivery_digest(record.id, &digest, &keys, integrations::REPLAY_WINDOW)
        .await?
    {
        metrics::counter!("switchyard_inbound_webhooks_total", "provider" => provider.code(), "outcome" => "replay").increment(1);
        return Ok(ok(InboundResult {
            events: earlier
                .into_iter()
                .map(|event_id| InboundEventResult {
                    event_id,
                    duplicate: true,
                    stale: false,
                })
                .collect(),
            duplicate: true,
            stale: false,
        }));
    }
    let mut results = Vec::with_capacity(events.len());
    for (event, source_modified_at) in events {
        let ingested = match state
            .executor
            .ingest_sourced(record.tenant_id, event, source_modified_at)
            .await
        {
            Ok(ingested) => ingested,
            Err(e) => {
                // Not ingested: the store will retry it, which must not be taken for a replay.
                if let Err(release) = state
                    .store
                    .release_delivery_digest(record.id, &digest)
                    .await
                {
                    tracing::warn!(error = %release, "could not release a delivery digest");
                }
                return Err(e.into());
            }
        };
        results.push(InboundEventResult {
            event_id: ingested.event_key,
            duplicate: ingested.duplicate,
            stale: ingested.stale,
        });
    }
    let duplicate = !results.is_empty() && results.iter().all(|r| r.duplicate);
    let stale = results.iter().any(|r| r.stale);
    metrics::counter!("switchyard_inbound_webhooks_total", "provider" => provider.code(), "outcome" => "accepted").increment(1);
    Ok(ok(InboundResult {
        events: results,
        duplicate,
        stale,
    }))
}

/// Whether any string of a translated store event holds U+0000 (refused like in API bodies).
fn contains_nul_event(event: &switchyard_schemas::event::EventIn) -> bool {
    event.entity_id.contains('\0')
        || event.trigger.contains('\0')
        || event
            .event_id
            .as_deref()
            .is_some_and(|id| id.contains('\0'))
        || event
            .data
            .iter()
            .any(|(k, v)| k.contains('\0') || contains_nul(v))
        || event.previous.as_ref().is_some_and(|previous| {
            previous
                .iter()
                .any(|(k, v)| k.contains('\0') || contains_nul(v))
        })
}
