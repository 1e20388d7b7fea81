//! Store integrations (CONTRACT §6): the provider catalog and what every provider shares.
//!
//! A provider is one module implementing [`Provider`] — its credential fields, how credentials
//! are verified against the store, how its webhooks are signed, and how a delivery translates into
//! entity events — plus one line in [`PROVIDERS`]. Nothing else names a concrete provider.
//!
//! Providers never send the previous state of an entity, so a delivery translates into candidate
//! events, some of which only apply when something changed ([`Emit::WhenChanged`]); [`settle`]
//! decides them against the entity the engine stored before the delivery.

pub mod custom;
pub mod shopify;
pub mod woocommerce;

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use async_trait::async_trait;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value, json};
use sha2::Sha256;
use switchyard_actions::http::{
    CappedResponse, GuardedClient, OutboundRequest, SendError, StatusCode, Url,
};
use switchyard_schemas::EntityType;
use switchyard_schemas::event::EventIn;
use uuid::{Uuid, uuid};

use crate::store::{Store, StoreResult, WorkflowSpec};

/// The namespace provider ids are derived under (UUID v5 of the provider's code). It must never
/// change: clients hard-code provider ids, and deployments agree on them only through it.
pub const PROVIDER_NAMESPACE: Uuid = uuid!("8f3b6c1e-4d2a-5e7f-9a0b-c1d2e3f4a5b6");

/// Every provider this engine knows. Adding a provider: a module and one line here.
static PROVIDERS: &[&dyn Provider] = &[
    &shopify::Shopify,
    &woocommerce::WooCommerce,
    &custom::Custom,
];

/// The `providerType` of every provider so far.
pub const ECOMMERCE: &str = "ecommerce";

/// The stable id of the provider with this code.
pub fn provider_guid(code: &str) -> Uuid {
    Uuid::new_v5(&PROVIDER_NAMESPACE, code.as_bytes())
}

/// Every registered provider, in catalog order.
pub fn providers() -> impl Iterator<Item = &'static dyn Provider> {
    PROVIDERS.iter().copied()
}

/// A provider by its id (any textual UUID form) or its code (case-insensitive).
pub fn find(id_or_code: &str) -> Option<&'static dyn Provider> {
    let given = id_or_code.trim();
    match Uuid::try_parse(given) {
        Ok(id) => providers().find(|p| p.provider_id() == id),
        Err(_) => providers().find(|p| p.code().eq_ignore_ascii_case(given)),
    }
}

/// A provider of the catalog. Pure except [`Provider::verify`], the one step that does I/O.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Short stable code (`shopify`), stored with each integration.
    fn code(&self) -> &'static str;
    /// Display name.
    fn name(&self) -> &'static str;
    fn provider_type(&self) -> &'static str {
        ECOMMERCE
    }
    fn provider_id(&self) -> Uuid {
        provider_guid(self.code())
    }
    /// The credentials it takes; anything else given is refused.
    fn credential_fields(&self) -> &'static [CredentialField];
    /// How credentials are checked, in words, for the catalog.
    fn verification(&self) -> &'static str;
    /// How inbound webhooks are signed, in words, for the catalog.
    fn inbound_signature(&self) -> &'static str;
    /// Inbound topics and the triggers each may emit, for the catalog.
    fn topics(&self) -> &'static [Topic];

    /// Checks formats beyond presence and fills in what may be generated; returns the names of the
    /// generated fields (shown once in the configure answer). Pure.
    fn complete(&self, _credentials: &mut Credentials) -> Result<Vec<&'static str>, FieldError> {
        Ok(Vec::new())
    }

    /// Checks the credentials against the store.
    async fn verify(
        &self,
        client: &GuardedClient,
        credentials: &Credentials,
    ) -> Result<(), VerifyError>;

    /// Whether the store can take tracking numbers back (`settings.pushTracking` installs a
    /// managed `push_tracking` workflow only for such providers).
    fn takes_tracking(&self) -> bool {
        false
    }

    /// A delivery the provider sends unsigned and expects a 2xx for, carrying nothing to ingest
    /// (WooCommerce's activation ping).
    fn is_unsigned_ping(&self, _headers: &HeaderMap, _body: &[u8]) -> bool {
        false
    }

    /// The delivery's topic header, for the replay digest ([`delivery_digest`]); empty for
    /// providers whose body says what it is.
    fn delivery_topic<'a>(&self, _headers: &'a HeaderMap) -> &'a str {
        ""
    }

    /// Checks the delivery's signature over the raw bytes, in constant time. `now` is unix
    /// seconds, for schemes with a replay window.
    fn authenticate_inbound(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        credentials: &Credentials,
        now: i64,
    ) -> Result<(), Unauthorized>;

    /// The entity events an authenticated delivery stands for (none for topics it ignores or that
    /// the settings turn off).
    fn translate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        settings: &IntegrationSettings,
    ) -> Result<Vec<InboundEvent>, TranslateError>;
}

/// One credential a provider takes.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialField {
    /// `apiKey`, `apiSecret`, `storeUrl` or `webhookSecret`.
    pub name: &'static str,
    pub required: bool,
    /// Secrets are stored encrypted and never shown again.
    pub secret: bool,
    pub description: &'static str,
}

/// An inbound topic and the triggers it may emit.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Topic {
    pub topic: &'static str,
    #[schema(value_type = String)]
    pub entity_type: EntityType,
    pub triggers: &'static [&'static str],
    /// When the derived triggers fire.
    pub note: &'static str,
}

/// The credentials of an integration, as stored (encrypted as one JSON document).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
    /// The signing secret of the store's webhooks, when it is not `apiSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("store_url", &self.store_url)
            .finish_non_exhaustive()
    }
}

/// Longest credential value accepted.
const MAX_CREDENTIAL: usize = 2048;

impl Credentials {
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "apiKey" => Some(&mut self.api_key),
            "apiSecret" => Some(&mut self.api_secret),
            "storeUrl" => Some(&mut self.store_url),
            "webhookSecret" => Some(&mut self.webhook_secret),
            _ => None,
        }
    }

    /// The given fields, by name.
    fn given(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("apiKey", &self.api_key),
            ("apiSecret", &self.api_secret),
            ("storeUrl", &self.store_url),
            ("webhookSecret", &self.webhook_secret),
        ]
    }

    /// The store URL (validated at configure time), or an error naming it.
    pub fn store(&self) -> Result<&str, VerifyError> {
        self.store_url
            .as_deref()
            .ok_or_else(|| VerifyError::Unexpected("no store URL".to_owned()))
    }
}

/// Checks the credentials against the provider's fields — required ones present, no others,
/// sizes, the store URL's shape (normalized in place; `https` unless `allow_http`, which is
/// `--allow-private-targets`) — then lets the provider complete them.
pub fn validate_credentials(
    provider: &dyn Provider,
    credentials: &mut Credentials,
    allow_http: bool,
) -> Result<Vec<&'static str>, FieldError> {
    let fields = provider.credential_fields();
    for (name, value) in credentials.given() {
        if value.is_some() && !fields.iter().any(|f| f.name == name) {
            return Err(FieldError::new(
                name,
                format!(
                    "`{}` takes no `{name}`; its credentials are: {}",
                    provider.code(),
                    fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    for field in fields {
        let Some(slot) = credentials.slot(field.name) else {
            continue;
        };
        if let Some(value) = slot.as_mut() {
            let trimmed = value.trim();
            if trimmed.len() > MAX_CREDENTIAL {
                return Err(FieldError::new(
                    field.name,
                    format!("{} must be at most {MAX_CREDENTIAL} characters", field.name),
                ));
            }
            *value = trimmed.to_owned();
        }
        if slot.as_deref().is_some_and(str::is_empty) {
            *slot = None;
        }
        if field.required && slot.is_none() {
            return Err(FieldError::new(
                field.name,
                format!(
                    "`{}` needs {}: {}",
                    provider.code(),
                    field.name,
                    field.description
                ),
            ));
        }
    }
    if let Some(url) = &credentials.store_url {
        let normalized = normalize_store_url(url).map_err(|m| FieldError::new("storeUrl", m))?;
        // Every call to the store carries its credentials (an access token, or WooCommerce's
        // key and secret as basic auth): over plain http they would travel in clear.
        if !allow_http && !normalized.starts_with("https://") {
            return Err(FieldError::new(
                "storeUrl",
                "storeUrl must be an https URL: the store's credentials travel with every call",
            ));
        }
        credentials.store_url = Some(normalized);
    }
    provider.complete(credentials)
}

/// `https://shop.example.com/` → `https://shop.example.com`: http(s) only, no user info, query or
/// fragment, no trailing slash (so one store has one spelling for the duplicate check).
pub fn normalize_store_url(text: &str) -> Result<String, String> {
    let url = Url::parse(text.trim())
        .map_err(|e| format!("storeUrl must be an absolute http(s) URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("storeUrl must be an http or https URL".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("storeUrl has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("storeUrl must not carry a user name or password".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("storeUrl must not have a query or fragment".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A bad credential, reported next to its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Per-integration switches (seed 001 `settings`). Importing defaults to on; pushing tracking,
/// which writes to the merchant's store, only when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntegrationSettings {
    /// Order topics are ingested; off: acknowledged and ignored.
    #[serde(default = "on")]
    pub auto_import_orders: bool,
    /// Product topics are ingested; off: acknowledged and ignored.
    #[serde(default = "on")]
    pub sync_products: bool,
    /// Installs a managed workflow sending shipments' tracking back to the store (CONTRACT §8).
    #[serde(default)]
    pub push_tracking: bool,
}

fn on() -> bool {
    true
}

impl Default for IntegrationSettings {
    fn default() -> Self {
        Self {
            auto_import_orders: true,
            sync_products: true,
            push_tracking: false,
        }
    }
}

impl IntegrationSettings {
    /// Whether deliveries about this entity type are ingested.
    pub fn imports(&self, entity: EntityType) -> bool {
        match entity {
            EntityType::Order => self.auto_import_orders,
            EntityType::Product => self.sync_products,
            _ => true,
        }
    }
}

/// A setting as the catalog describes it.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingInfo {
    pub name: &'static str,
    pub default: bool,
    pub description: &'static str,
}

/// The settings every provider takes.
pub const SETTINGS: &[SettingInfo] = &[
    SettingInfo {
        name: "autoImportOrders",
        default: true,
        description: "ingest order webhooks; off: they are acknowledged and ignored",
    },
    SettingInfo {
        name: "syncProducts",
        default: true,
        description: "ingest product webhooks; off: they are acknowledged and ignored",
    },
    SettingInfo {
        name: "pushTracking",
        default: false,
        description: "install a managed workflow that sends each shipped shipment's tracking \
                      number, company and URL back to the store (Shopify fulfillment tracking, \
                      WooCommerce order note); shipments name the store with `integrationGuid`",
    },
];

/// Why verifying credentials failed; every case is the merchant's to fix (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The store answered 401 or 403.
    #[error("Invalid credentials")]
    Rejected { status: u16 },
    /// Nothing usable answered: refused, timed out, not resolvable, or not an allowed target.
    #[error("{0}")]
    Unreachable(String),
    /// Something answered, but not like the store this provider expects.
    #[error("{0}")]
    Unexpected(String),
}

/// A delivery that failed authentication; the text says why without revealing a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unauthorized(pub String);

/// An authenticated delivery that cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TranslateError(pub String);

/// One entity event a delivery stands for, and when it applies.
#[derive(Debug, Clone)]
pub struct InboundEvent {
    pub event: EventIn,
    pub emit: Emit,
    /// The resource's own modification time as the delivery states it (Shopify `updated_at`,
    /// WooCommerce `date_modified_gmt`): a delivery older than what the entity store holds is
    /// stale (CONTRACT §8). `None` when the payload has none: never stale.
    pub source_modified_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// When a translated event is ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Always,
    /// Only when `data[field]` differs from the stored entity's (or nothing is stored yet): the
    /// transition triggers (`order_status_changed`, `product_out_of_stock`, …).
    WhenChanged(&'static str),
}

/// Decides the delivery's conditional events against the entities stored before it and gives
/// every event that stored state as `previous` (`{}` when the entity is new, as the executor
/// shows a missing one). Reading first matters: ingesting the first event of a delivery replaces
/// the stored entity the others must be compared with.
pub async fn settle(
    store: &Store,
    tenant_id: Uuid,
    events: Vec<InboundEvent>,
) -> StoreResult<Vec<(EventIn, Option<i64>)>> {
    let mut stored: HashMap<(EntityType, String), Option<Map<String, Value>>> = HashMap::new();
    for inbound in &events {
        let key = (inbound.event.entity_type, inbound.event.entity_id.clone());
        if let Entry::Vacant(slot) = stored.entry(key) {
            let (entity_type, entity_id) = slot.key();
            let entity = store
                .entity(tenant_id, entity_type.as_str(), entity_id)
                .await?
                .map(|v| match v {
                    Value::Object(map) => map,
                    _ => Map::new(),
                });
            slot.insert(entity);
        }
    }
    Ok(events
        .into_iter()
        .filter_map(|inbound| {
            let key = (inbound.event.entity_type, inbound.event.entity_id.clone());
            let previous = stored.get(&key).cloned().flatten();
            if !applies(inbound.emit, previous.as_ref(), &inbound.event.data) {
                return None;
            }
            let mut event = inbound.event;
            // A sender that knows the previous state (custom integrations may) is believed.
            if event.previous.is_none() {
                event.previous = Some(previous.unwrap_or_default());
            }
            Some((
                event,
                inbound.source_modified_at.map(|t| t.timestamp_millis()),
            ))
        })
        .collect())
}

/// Whether an event applies given the stored entity (`None`: never seen).
pub fn applies(emit: Emit, stored: Option<&Map<String, Value>>, data: &Map<String, Value>) -> bool {
    match emit {
        Emit::Always => true,
        Emit::WhenChanged(field) => stored.is_none_or(|stored| {
            stored.get(field).unwrap_or(&Value::Null) != data.get(field).unwrap_or(&Value::Null)
        }),
    }
}

/// The events of one delivery about one entity: the first trigger's event carries the delivery's
/// id, each further one the id plus `:<trigger>`, so every event has its own stable id and a
/// redelivery repeats them all.
pub fn delivery_events(
    delivery_id: &str,
    entity_type: EntityType,
    entity_id: &str,
    data: Map<String, Value>,
    occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    source_modified_at: Option<chrono::DateTime<chrono::Utc>>,
    triggers: &[(&str, Emit)],
) -> Vec<InboundEvent> {
    triggers
        .iter()
        .enumerate()
        .map(|(index, &(trigger, emit))| InboundEvent {
            event: EventIn {
                entity_type,
                trigger: trigger.to_owned(),
                entity_id: entity_id.to_owned(),
                data: data.clone(),
                previous: None,
                event_id: Some(if index == 0 {
                    delivery_id.to_owned()
                } else {
                    format!("{delivery_id}:{trigger}")
                }),
                occurred_at,
            },
            emit,
            source_modified_at,
        })
        .collect()
}

/// How long a delivery's digest is kept: the same topic and body within this window are a replay
/// (CONTRACT §7: at least 7 days).
pub const REPLAY_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Hex SHA-256 of the topic, a NUL and the raw body: what a replayed delivery has in common with
/// the original whatever delivery id it carries (the provider's signature covers only the body,
/// so the id header can be changed freely; the topic is covered here so that one body under two
/// topics stays two deliveries).
pub fn delivery_digest(topic: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let mut hasher = Sha256::new();
    hasher.update(topic.as_bytes());
    hasher.update([0u8]);
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses a delivery body that must be a JSON object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, TranslateError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TranslateError("the body is not a JSON object".to_owned())),
        Err(e) => Err(TranslateError(format!("the body is not valid JSON: {e}"))),
    }
}

/// A provider id as text: 64-bit integers stay exact (never through f64), strings pass through.
pub fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => n
            .as_u64()
            .map(|v| v.to_string())
            .or_else(|| n.as_i64().map(|v| v.to_string())),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// A money amount as a JSON number: providers send decimal strings (`"87.00"`).
pub fn money(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Some(Value::Number(n)) => Value::Number(n.clone()),
        _ => Value::Null,
    }
}

/// A non-empty string field, or null.
pub fn text(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Value::String(s.clone()),
        _ => Value::Null,
    }
}

/// The first non-empty string among `values`.
pub fn first_text<'a>(values: impl IntoIterator<Item = Option<&'a Value>>) -> Value {
    values
        .into_iter()
        .map(text)
        .find(|v| !v.is_null())
        .unwrap_or(Value::Null)
}

/// A header as text, when present and printable.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether `signature` (base64) is HMAC-SHA256(key, body), compared in constant time.
pub fn hmac_base64_matches(key: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(tag) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// Sends a credential check and maps what went wrong into words for the merchant.
pub async fn probe(
    client: &GuardedClient,
    request: OutboundRequest,
) -> Result<CappedResponse, VerifyError> {
    let url = request.url.clone();
    let response = client
        .send_capped(request, 256 * 1024, 64 * 1024)
        .await
        .map_err(|e| {
            VerifyError::Unreachable(match e {
                SendError::Blocked(reason) => format!("the store URL is not allowed: {reason}"),
                SendError::Timeout(_) => format!(
                    "the store did not answer within {}",
                    humantime::format_duration(client.timeout())
                ),
                SendError::Connect(reason) | SendError::Other(reason) => {
                    format!("the store could not be reached: {reason}")
                }
            })
        })?;
    match response.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(VerifyError::Rejected {
            status: response.status.as_u16(),
        }),
        status if status.is_success() => Ok(response),
        status => Err(VerifyError::Unexpected(format!(
            "the store answered {status} to GET {}",
            url.path()
        ))),
    }
}

/// `{storeUrl}{path}` as a URL.
pub fn store_endpoint(credentials: &Credentials, path: &str) -> Result<Url, VerifyError> {
    let base = credentials.store()?;
    Url::parse(&format!("{base}{path}"))
        .map_err(|e| VerifyError::Unexpected(format!("bad store URL: {e}")))
}

/// A timestamp the provider sent, as UTC; WooCommerce's `*_gmt` fields carry no offset.
pub fn timestamp(value: Option<&Value>) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = value?.as_str()?.trim();
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// A timestamp as the normalized data shows it (RFC 3339 UTC), or null.
pub fn timestamp_value(value: Option<&Value>) -> Value {
    timestamp(value).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    })
}

/// The trigger a managed tracking workflow runs on.
pub const TRACKING_TRIGGER: &str = "shipment_shipped";

/// The field of an inbound event's data naming the integration it came through.
pub const INTEGRATION_FIELD: &str = "integrationGuid";

/// The managed workflow `settings.pushTracking` installs for an integration (CONTRACT §8): on
/// `shipment_shipped`, for shipments of this store (their data names it: `integrationGuid`, which
/// the store's own deliveries carry and a carrier or ERP posting to `/api/events` sets) that have
/// a tracking number, one `push_tracking` step sending it to the store. A workflow document like
/// any tenant's, which the engine carries as data.
pub fn tracking_workflow(
    provider: &dyn Provider,
    integration: Uuid,
    store_url: Option<&str>,
) -> Result<WorkflowSpec, serde_json::Error> {
    let store = store_url
        .and_then(|url| Url::parse(url).ok())
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| integration.to_string());
    serde_json::from_value(json!({
        "name": format!("Send tracking to {} ({store})", provider.name()),
        "entityType": "Shipment",
        "trigger": TRACKING_TRIGGER,
        "actions": [{"type": "push_tracking", "integration": integration}],
        "conditions": {INTEGRATION_FIELD: integration},
        "condition": r#"entity.trackingNumber != () && entity.trackingNumber != """#,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_found_by_code_and_stable_id() {
        for provider in providers() {
            assert_eq!(
                find(&provider.provider_id().to_string()).map(|p| p.code()),
                Some(provider.code())
            );
            assert_eq!(
                find(&provider.code().to_uppercase()).map(|p| p.code()),
                Some(provider.code())
            );
        }
        assert!(find("magento").is_none());
        // Pinned: clients hard-code provider ids.
        assert_eq!(
            provider_guid("shopify"),
            Uuid::new_v5(&PROVIDER_NAMESPACE, b"shopify")
        );
    }

    #[test]
    fn ids_never_pass_through_floats() {
        let big = serde_json::from_str::<Value>("820982911946154508").expect("json");
        assert_eq!(id_text(Some(&big)).as_deref(), Some("820982911946154508"));
        assert_eq!(id_text(Some(&json!(-5))).as_deref(), Some("-5"));
        assert_eq!(id_text(Some(&json!(1.5))), None);
        assert_eq!(id_text(Some(&json!("abc"))).as_deref(), Some("abc"));
        assert_eq!(money(Some(&json!("87.00"))), json!(87.0));
        assert_eq!(money(Some(&json!("n/a"))), Value::Null);
    }

    #[test]
    fn changed_fields_decide_transition_events() {
        let data = json!({"status": "paid", "inStock": false});
        let data = data.as_object().expect("object");
        let same = json!({"status": "paid", "inStock": false});
        let before = json!({"status": "pending", "inStock": true});
        assert!(applies(Emit::WhenChanged("status"), None, data));
        assert!(!applies(
            Emit::WhenChanged("status"),
            same.as_object(),
            data
        ));
        assert!(applies(
            Emit::WhenChanged("status"),
            before.as_object(),
            data
        ));
        assert!(applies(
            Emit::WhenChanged("inStock"),
            before.as_object(),
            data
        ));
        assert!(applies(Emit::Always, same.as_object(), data));
    }

    #[test]
    fn store_urls_are_normalized() {
        assert_eq!(
            normalize_store_url("https://Shop.Example.com/").as_deref(),
            Ok("https://shop.example.com")
        );
        assert_eq!(
            normalize_store_url("https://example.com/shop/").as_deref(),
            Ok("https://example.com/shop")
        );
        assert!(normalize_store_url("ftp://example.com").is_err());
        assert!(normalize_store_url("https://u:p@example.com").is_err());
        assert!(normalize_store_url("example.com").is_err());
        assert!(normalize_store_url("https://example.com/?a=1").is_err());
    }

    #[test]
    fn hmac_is_checked_over_raw_bytes() {
        // The fixtures' 8-byte test vector (tests/fixtures/shopify/HEADERS.md).
        let key = b"shpss_fixture_not_a_real_secret_0001";
        let sig = "rjGqK0tMmcZtFCHNYEECXehU26vu6CNKVp8abLnA8JI=";
        assert!(hmac_base64_matches(key, b"{\"id\":1}", sig));
        assert!(!hmac_base64_matches(key, b"{\"id\":2}", sig));
        assert!(!hmac_base64_matches(key, b"{\"id\":1}", "not base64!"));
    }
}
