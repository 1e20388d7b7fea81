//! Flow-control keys (CONTRACT §8): `"entity"` or a MiniJinja template over `entity` and `event`,
//! rendered for one event. Shared by everything keyed by such a key (`concurrency`).

use serde_json::json;
use sha2::Digest;
use switchyard_actions::template::{self, TemplateLimits};
use switchyard_schemas::workflow::ENTITY_KEY;

use super::event_view;
use crate::domain::concurrency::{entity_key, normalize_key};
use crate::store::EventRecord;

/// The key `source` gives for `event`: `None` when it renders empty (the event is not keyed).
/// A template that fails to render (it is checked when the workflow is saved, so only data can
/// make it fail) counts as empty, and the failure is logged.
pub async fn render_key(source: &str, event: &EventRecord) -> Option<String> {
    if source == ENTITY_KEY {
        return Some(entity_key(&event.entity_type, &event.entity_id));
    }
    let scope = event_view(event).template_scope(json!(null));
    let source = source.to_owned();
    // Bounded like every template, but it may take milliseconds: off the runtime's threads.
    let rendered = tokio::task::spawn_blocking(move || {
        template::render(&source, &scope, &TemplateLimits::default())
    })
    .await
    .unwrap_or_else(|e| Err(format!("the render stopped: {e}")));
    match rendered {
        Ok(text) => normalize_key(&text, |long| {
            sha2::Sha256::digest(long.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }),
        Err(e) => {
            tracing::warn!(event = %event.id, error = %e, "a flow-control key did not render; the event is not keyed");
            None
        }
    }
}
