//! The one view of an event that conditions and templates see (CONTRACT §4, §5): built here
//! and nowhere else, so matching, running a step, the dry run and the save-time trial of a
//! condition cannot drift apart in what `event.*` holds.
//!
//! Conditions get `entity`, `event` and `tenant`; templates get `entity`, `event` and
//! `workflow`. Both read the same `entity` and `event` objects. The one difference is when
//! `entity` is read: a condition runs as the event arrives and sees the event's data; a step
//! renders later and sees the entity store's latest data ([`EventView::with_entity`]), which the
//! event's data may have been followed by.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use switchyard_triggers::EvalInput;
use uuid::Uuid;

/// What the view is built from: a stored event's fields, or a dry run's.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    /// The tenant's `eventId` (or the key the engine gave it).
    pub key: &'a str,
    pub trigger: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub occurred_at: DateTime<Utc>,
    /// The entity before the event; `{}` when there is none.
    pub previous: Option<&'a Value>,
    pub depth: i64,
    pub causation_id: Option<Uuid>,
}

/// What conditions and templates see of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    /// The entity's data.
    pub entity: Value,
    /// `{"id", "trigger", "entityType", "entityId", "occurredAt", "previous", "depth",
    /// "causationId"}`, and `scheduledAt` for a schedule tick.
    pub event: Value,
}

impl EventView {
    /// The view of an event whose data is `entity`.
    pub fn new(facts: &EventFacts<'_>, entity: Value) -> Self {
        let mut event = json!({
            "id": facts.key,
            "trigger": facts.trigger,
            "entityType": facts.entity_type,
            "entityId": facts.entity_id,
            "occurredAt": facts.occurred_at,
            "previous": facts.previous.cloned().unwrap_or_else(|| json!({})),
            "depth": facts.depth,
            "causationId": facts.causation_id,
        });
        // A schedule tick also says when it was due (CONTRACT §5: `scheduledAt` = `occurredAt`).
        if super::schedule::tick_owner(facts.trigger, facts.key).is_some()
            && let Some(fields) = event.as_object_mut()
        {
            fields.insert("scheduledAt".to_owned(), json!(facts.occurred_at));
        }
        Self { entity, event }
    }

    /// The same event with the entity's data as it is now (what a step renders against).
    pub fn with_entity(self, entity: Value) -> Self {
        Self { entity, ..self }
    }

    /// What a condition evaluates against.
    pub fn conditions(&self, tenant_id: Uuid) -> EvalInput {
        EvalInput {
            entity: self.entity.clone(),
            event: self.event.clone(),
            tenant: json!({ "id": tenant_id }),
        }
    }

    /// What templates render against; `workflow` is `{"guid", "name", "version"}` when a step
    /// runs (only `name` in a dry run of an unsaved workflow).
    pub fn template_scope(&self, workflow: Value) -> Value {
        json!({
            "entity": self.entity,
            "event": self.event,
            "workflow": workflow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(key: &'a str, trigger: &'a str, previous: Option<&'a Value>) -> EventFacts<'a> {
        EventFacts {
            key,
            trigger,
            entity_type: "order",
            entity_id: "o-1",
            occurred_at: DateTime::from_timestamp_millis(1_700_000_000_000).expect("time"),
            previous,
            depth: 2,
            causation_id: None,
        }
    }

    #[test]
    fn conditions_and_templates_see_the_same_entity_and_event() {
        let previous = json!({"status": "pending"});
        let view = EventView::new(
            &facts("evt-1", "order_paid", Some(&previous)),
            json!({"total": 120, "status": "paid"}),
        );
        let input = view.conditions(Uuid::nil());
        let scope = view.template_scope(json!({"name": "Paid orders"}));
        assert_eq!(scope["entity"], input.entity);
        assert_eq!(scope["event"], input.event);
        assert_eq!(input.tenant, json!({"id": Uuid::nil()}));
        let fields: Vec<&str> = input
            .event
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            [
                "id",
                "trigger",
                "entityType",
                "entityId",
                "occurredAt",
                "previous",
                "depth",
                "causationId"
            ]
        );
        assert_eq!(input.event["previous"], previous);
        assert_eq!(input.event["occurredAt"], json!("2023-11-14T22:13:20Z"));
        assert_eq!(input.event["depth"], json!(2));
    }

    #[test]
    fn an_event_without_previous_data_shows_an_empty_object() {
        let view = EventView::new(&facts("evt-1", "order_paid", None), json!({}));
        assert_eq!(view.event["previous"], json!({}));
        assert_eq!(view.event["causationId"], Value::Null);
    }

    #[test]
    fn a_schedule_tick_says_when_it_was_due() {
        let key = super::super::schedule::tick_event_key(Uuid::nil(), 1_700_000_000_000);
        let view = EventView::new(&facts(&key, "order_schedule", None), json!({}));
        assert_eq!(view.event["scheduledAt"], view.event["occurredAt"]);
        let entity = EventView::new(&facts(&key, "order_paid", None), json!({}));
        assert!(entity.event.get("scheduledAt").is_none());
    }

    #[test]
    fn a_step_renders_against_the_latest_entity_with_the_same_event() {
        let view = EventView::new(&facts("evt-1", "order_paid", None), json!({"v": 1}));
        let later = view.clone().with_entity(json!({"v": 2}));
        assert_eq!(later.event, view.event);
        assert_eq!(later.template_scope(Value::Null)["entity"], json!({"v": 2}));
    }
}
