//! Workflow specs: the configure body (seed 001 plus the contract's additions) and the record the
//! API returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::EntityType;

/// One step of a workflow: `{"type": "send_email", ...parameters of that type}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionSpec {
    /// The action type: a built-in (`send_email`, `send_push`, `webhook`, `update_status`, `delay`)
    /// or one an integrator registered.
    #[serde(rename = "type")]
    pub kind: String,
    /// The parameters of that action type; strings are MiniJinja templates.
    #[serde(flatten)]
    #[schema(value_type = Object, additional_properties)]
    pub params: Map<String, Value>,
}

/// When a `<entity>_schedule` workflow fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// Cron with a seconds field: `sec min hour day-of-month month day-of-week [year]`.
    #[schema(example = "0 0 9 * * *")]
    pub cron: String,
    /// IANA time zone; UTC when absent.
    #[serde(default = "utc")]
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
}

/// One entry of `cancelOn` (CONTRACT §8): an event on `triggerId` cancels this workflow's queued
/// and waiting executions whose key equals the event's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelOn {
    /// The trigger's guid or its code (`order_created`); records show the code.
    #[schema(example = "order_created")]
    pub trigger_id: String,
    /// `"entity"` or absent: the event's entity type and id. Otherwise a MiniJinja template over
    /// `entity` and `event`; an empty rendered key means "no key".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "{{ entity.customer.email }}")]
    pub key: Option<String>,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// How many executions of a workflow may be active at once per key (CONTRACT §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Concurrency {
    /// `"entity"` (the event's entity type and id; the default) or a MiniJinja template over
    /// `entity` and `event`. A key that renders empty puts no limit on that execution.
    #[serde(default = "entity_key")]
    #[schema(example = "entity")]
    pub key: String,
    /// At most this many executions with the same key are `running`, `waiting` or `paused` at
    /// once; the others stay `queued`, holding no worker, and start in the order of their events.
    #[schema(example = 1, minimum = 1)]
    pub limit: u32,
}

/// One execution on the newest of a burst of matching events with the same key (CONTRACT §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Debounce {
    /// `"entity"` (the default) or a MiniJinja template over `entity` and `event`.
    #[serde(default = "entity_key")]
    #[schema(example = "entity")]
    pub key: String,
    /// How long a matching event waits for a newer one with the same key (`"10m"`).
    #[schema(example = "10m")]
    pub period: String,
    /// The longest a burst may postpone its execution, counted from its first event (`"1h"`).
    #[serde(default)]
    #[schema(example = "1h")]
    pub max_wait: Option<String>,
}

/// The default flow-control key: the event's entity type and id.
pub const ENTITY_KEY: &str = "entity";

fn entity_key() -> String {
    ENTITY_KEY.to_owned()
}

/// Body of `POST /api/workflows/configure`. `guid` present means update.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowConfig {
    #[serde(default)]
    pub guid: Option<Uuid>,
    pub name: String,
    pub entity_type: EntityType,
    /// The trigger's guid or its code (`shipment_delivered`).
    pub trigger_id: String,
    /// A single step, as in seed 001. Use either `action` or `actions`.
    #[serde(default)]
    pub action: Option<ActionSpec>,
    /// Steps run in order.
    #[serde(default)]
    pub actions: Option<Vec<ActionSpec>>,
    /// Dot path into the entity → value it must equal; all must hold.
    #[serde(default)]
    #[schema(value_type = Option<Object>, additional_properties)]
    pub conditions: Option<Map<String, Value>>,
    /// A Rhai expression returning bool, with `entity`, `event` and `tenant` in scope.
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Triggers whose events cancel this workflow's queued and waiting executions (at most 20).
    #[serde(default)]
    pub cancel_on: Option<Vec<CancelOn>>,
    /// Left out: a new workflow is active, an update keeps the workflow's current state.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Per-key concurrency limit (CONTRACT §8).
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    /// Debounce per key (CONTRACT §8).
    #[serde(default)]
    pub debounce: Option<Debounce>,
}

/// A workflow as the API returns it (lists and single reads): the seed's shape plus the contract's
/// additions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRecord {
    pub guid: Uuid,
    pub name: String,
    pub entity_type: EntityType,
    /// The trigger's code.
    pub trigger: String,
    pub trigger_id: Uuid,
    /// The first step's type, as in seed 001.
    pub action: String,
    pub is_active: bool,
    pub is_managed: bool,
    /// For a managed workflow, the guid of the integration that installed it (its toggle and
    /// removal drive the workflow's); `null` for every other workflow.
    #[serde(default)]
    pub integration_guid: Option<Uuid>,
    pub actions: Vec<ActionSpec>,
    #[schema(value_type = Object, additional_properties)]
    pub conditions: Map<String, Value>,
    pub condition: Option<String>,
    pub schedule: Option<Schedule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Debounce>,
    /// Empty when the workflow has none.
    #[serde(default)]
    pub cancel_on: Vec<CancelOn>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Answer of the toggle endpoint (seed 001).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToggleResult {
    pub guid: Uuid,
    pub is_active: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_body_parses_and_unknown_fields_are_refused() {
        let body = json!({
            "name": "Customer Delivery Notification",
            "entityType": "Shipment",
            "triggerId": "shipment_delivered",
            "action": {"type": "send_email", "recipient": "customer", "template": "delivery_confirmation"},
            "conditions": {"status": "delivered"}
        });
        let cfg: WorkflowConfig = serde_json::from_value(body.clone()).expect("seed body");
        let action = cfg.action.expect("action");
        assert_eq!(action.kind, "send_email");
        assert_eq!(action.params["template"], "delivery_confirmation");

        let mut bad = body;
        bad["colour"] = json!("red");
        let err = serde_json::from_value::<WorkflowConfig>(bad).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
