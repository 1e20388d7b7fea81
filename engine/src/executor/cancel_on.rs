//! `cancelOn` keys (CONTRACT §8). An execution's keys are rendered when it is created, one per
//! `cancelOn` entry of its workflow version, and stored (`execution_keys`); an incoming event on a
//! trigger some workflow lists renders that workflow's key template on itself, and the workflow's
//! queued and waiting executions holding the same key are cancelled in the transaction that
//! stores the event. Both sides render through [`key`], so they cannot disagree.

use crate::domain::EventView;
use crate::store::{CancelCandidate, CancelHit, EventRecord, NewExecution};

/// The key of `view` under `template` (see [`super::flow_key::key`], shared with `concurrency`
/// and `debounce`): `None` (or `"entity"`) is the event's entity type and id.
pub fn key(
    template: Option<&str>,
    entity_type: &str,
    entity_id: &str,
    view: &EventView,
) -> Option<String> {
    super::flow_key::key(template, entity_type, entity_id, view)
}

/// The keys an execution of `cancel_on` started by `event` can be cancelled by: (trigger, key).
pub fn execution_keys(
    cancel_on: &[switchyard_schemas::CancelOn],
    event: &EventRecord,
    view: &EventView,
) -> Vec<(String, String)> {
    cancel_on
        .iter()
        .filter_map(|entry| {
            key(
                entry.key.as_deref(),
                &event.entity_type,
                &event.entity_id,
                view,
            )
            .map(|k| (entry.trigger_id.clone(), k))
        })
        .collect()
}

/// What `event` cancels: for each workflow listing its trigger, the workflow and the event's key.
pub fn hits(
    event: &EventRecord,
    view: &EventView,
    candidates: &[CancelCandidate],
) -> Vec<CancelHit> {
    candidates
        .iter()
        .filter_map(|c| {
            key(
                c.key_template.as_deref(),
                &event.entity_type,
                &event.entity_id,
                view,
            )
            .map(|key| CancelHit {
                tenant_id: event.tenant_id,
                workflow_id: c.workflow_id,
                trigger: event.trigger.clone(),
                key,
                execution_id: None,
            })
        })
        .collect()
}

/// The hits of `hits` that concern executions not stored yet (`pending`, started by earlier
/// events of a batch), each narrowed to one such execution: its workflow and key match.
pub fn in_batch<'a>(
    hits: &[CancelHit],
    pending: impl Iterator<Item = &'a NewExecution>,
) -> Vec<CancelHit> {
    let mut out = Vec::new();
    for execution in pending {
        for hit in hits {
            if hit.workflow_id == execution.workflow_id
                && execution
                    .cancel_keys
                    .iter()
                    .any(|(trigger, key)| *trigger == hit.trigger && *key == hit.key)
            {
                out.push(CancelHit {
                    execution_id: Some(execution.id),
                    ..hit.clone()
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::domain::EventFacts;

    fn view(entity: serde_json::Value) -> EventView {
        EventView::new(
            &EventFacts {
                key: "evt-1",
                trigger: "order_created",
                entity_type: "Order",
                entity_id: "ord_1",
                occurred_at: chrono::DateTime::UNIX_EPOCH,
                previous: None,
                depth: 0,
                causation_id: None,
            },
            entity,
        )
    }

    #[test]
    fn keys_default_to_the_entity_and_render_templates() {
        let v = view(json!({"customer": {"email": " ana@example.com "}}));
        assert_eq!(
            key(None, "Order", "ord_1", &v).as_deref(),
            Some("Order:ord_1")
        );
        assert_eq!(
            key(Some("entity"), "Order", "ord_1", &v).as_deref(),
            Some("Order:ord_1")
        );
        assert_eq!(
            key(Some("{{ entity.customer.email }}"), "Order", "ord_1", &v).as_deref(),
            Some("ana@example.com")
        );
        assert_eq!(
            key(
                Some("{{ event.trigger }}/{{ event.entityId }}"),
                "Order",
                "ord_1",
                &v
            )
            .as_deref(),
            Some("order_created/ord_1")
        );
        // Empty: no key.
        assert_eq!(
            key(Some("{{ entity.missing.email }}"), "Order", "ord_1", &v),
            None
        );
        // Long keys are stored hashed, the same way on both sides.
        let long = view(json!({"k": "x".repeat(500)}));
        let hashed = key(Some("{{ entity.k }}"), "Order", "ord_1", &long).expect("key");
        assert!(hashed.starts_with("sha256:") && hashed.len() == 7 + 64);
        assert_eq!(
            key(Some("{{ entity.k }}"), "Order", "ord_1", &long),
            Some(hashed)
        );
    }

    #[test]
    fn in_batch_narrows_hits_to_pending_executions_with_the_key() {
        let tenant = Uuid::now_v7();
        let workflow = Uuid::now_v7();
        let mut holding =
            NewExecution::new(tenant, workflow, 1, Uuid::now_v7(), "Customer", "c", &[]);
        holding.cancel_keys = vec![("order_created".into(), "ana@example.com".into())];
        let mut other_key = holding.clone();
        other_key.id = Uuid::now_v7();
        other_key.cancel_keys = vec![("order_created".into(), "bob@example.com".into())];
        let mut other_workflow = holding.clone();
        other_workflow.id = Uuid::now_v7();
        other_workflow.workflow_id = Uuid::now_v7();
        let hit = CancelHit {
            tenant_id: tenant,
            workflow_id: workflow,
            trigger: "order_created".into(),
            key: "ana@example.com".into(),
            execution_id: None,
        };
        let narrowed = in_batch(&[hit], [&holding, &other_key, &other_workflow].into_iter());
        assert_eq!(narrowed.len(), 1);
        assert_eq!(narrowed[0].execution_id, Some(holding.id));
    }
}
