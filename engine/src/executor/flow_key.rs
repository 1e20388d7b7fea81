//! Flow-control keys (CONTRACT §8): `"entity"` (or no key) is the event's entity type and id;
//! anything else is a MiniJinja template over `entity` and `event`, rendered for one event,
//! trimmed; empty means "no key"; long keys are stored as their SHA-256. One function serves
//! `concurrency`, `debounce` and `cancelOn` (both the execution's side and the incoming event's),
//! so they cannot disagree.

use serde_json::json;
use sha2::Digest;
use switchyard_actions::template::{self, TemplateLimits};
use switchyard_schemas::workflow::ENTITY_KEY;

use super::event_view;
use crate::domain::EventView;
use crate::domain::concurrency::{entity_key, normalize_key};
use crate::store::EventRecord;

/// The key `template` gives for an event (its entity and its view). A template that fails to
/// render (it is checked when the workflow is saved, so only data can make it fail) gives no key,
/// and the failure is logged.
pub fn key(
    template: Option<&str>,
    entity_type: &str,
    entity_id: &str,
    view: &EventView,
) -> Option<String> {
    let source = match template {
        None => return Some(entity_key(entity_type, entity_id)),
        Some(t) if t == ENTITY_KEY => return Some(entity_key(entity_type, entity_id)),
        Some(t) => t,
    };
    let scope = json!({"entity": view.entity, "event": view.event});
    match template::render(source, &scope, &TemplateLimits::default()) {
        Ok(text) => normalize_key(&text, |long| {
            sha2::Sha256::digest(long.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }),
        Err(e) => {
            tracing::warn!(error = %e, "a flow-control key did not render; the event is not keyed");
            None
        }
    }
}

/// [`key`] for a stored event, rendered off the runtime's threads (bounded like every template,
/// but it may take milliseconds).
pub async fn render_key(source: &str, event: &EventRecord) -> Option<String> {
    if source == ENTITY_KEY {
        return Some(entity_key(&event.entity_type, &event.entity_id));
    }
    let view = event_view(event);
    let (source, entity_type, entity_id) = (
        source.to_owned(),
        event.entity_type.clone(),
        event.entity_id.clone(),
    );
    tokio::task::spawn_blocking(move || key(Some(&source), &entity_type, &entity_id, &view))
        .await
        .unwrap_or(None)
}
