//! Schedule ticks (CONTRACT §5): the key of a tick's synthetic event names the workflow it was
//! fired for, so a tick starts that workflow only, not every workflow on the same
//! `<entity>_schedule` trigger.

use uuid::Uuid;

/// The entity id of every tick's synthetic event: none. A tick is about no entity (its entity is
/// `{}`), and no entity id is reserved (CONTRACT §8): real ids are 1 to 255 bytes and not blank,
/// checked on every way in, so the empty id is a key no real entity can reach. No entity store
/// row is read or written under it: a tick's steps see `{}`, and `update_status` has no entity to
/// change (migration 0008 moved the ticks stored under the old `schedule` id).
pub const TICK_ENTITY_ID: &str = "";

/// Whether an entity id names no entity (a schedule tick's).
pub fn is_no_entity(entity_id: &str) -> bool {
    entity_id.is_empty()
}

const TICK_KEY_PREFIX: &str = "tick_";

/// The event key of a workflow's tick: unique per tick, and names the workflow it is for.
pub fn tick_event_key(workflow_id: Uuid, tick_ms: i64) -> String {
    format!("{TICK_KEY_PREFIX}{workflow_id}_{tick_ms}")
}

fn is_schedule_trigger(code: &str) -> bool {
    switchyard_triggers::by_code(code).is_some_and(|t| t.scheduled)
}

/// The workflow a schedule tick's event (its trigger and key) was fired for; `None` for every
/// other event.
pub fn tick_owner(trigger: &str, event_key: &str) -> Option<Uuid> {
    if !is_schedule_trigger(trigger) {
        return None;
    }
    let (id, _tick_ms) = event_key.strip_prefix(TICK_KEY_PREFIX)?.rsplit_once('_')?;
    Uuid::parse_str(id).ok()
}

/// Matching candidates for an event: unchanged for entity events; for a schedule tick only the
/// workflow that owns the schedule, and none when the tick names no owner.
pub fn tick_candidates(
    trigger: &str,
    event_key: &str,
    candidates: Vec<(Uuid, i64)>,
) -> Vec<(Uuid, i64)> {
    if !is_schedule_trigger(trigger) {
        return candidates;
    }
    let owner = tick_owner(trigger, event_key);
    candidates
        .into_iter()
        .filter(|(id, _)| Some(*id) == owner)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_starts_only_the_workflow_it_was_fired_for() {
        let (owner, other) = (Uuid::now_v7(), Uuid::now_v7());
        let candidates = vec![(owner, 3), (other, 1)];
        let key = tick_event_key(owner, 1_777_000_000_000);
        assert_eq!(tick_owner("order_schedule", &key), Some(owner));
        assert_eq!(
            tick_candidates("order_schedule", &key, candidates.clone()),
            vec![(owner, 3)]
        );
        // A schedule event that names no owner starts nothing.
        assert_eq!(
            tick_candidates("order_schedule", "evt_1", candidates.clone()),
            vec![]
        );
        // Entity events are left alone, even with a key that looks like a tick's.
        assert_eq!(tick_owner("order_paid", &key), None);
        assert_eq!(
            tick_candidates("order_paid", &key, candidates.clone()),
            candidates
        );
    }
}
