//! Entity events as they come in through `POST /api/events` and as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::EntityType;

/// Body of `POST /api/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventIn {
    pub entity_type: EntityType,
    /// A trigger code of that entity type (`order_status_changed`).
    pub trigger: String,
    pub entity_id: String,
    /// The entity's current data.
    #[serde(default)]
    #[schema(value_type = Object, additional_properties)]
    pub data: Map<String, Value>,
    /// The entity's previous data, when the sender knows it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub previous: Option<Map<String, Value>>,
    /// Idempotency key, unique per tenant; generated when absent.
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Answer of `POST /api/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventAccepted {
    pub event_id: String,
    pub duplicate: bool,
    /// The internal id of the stored event.
    pub id: Uuid,
}
