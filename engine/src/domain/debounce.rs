//! Debounce (CONTRACT §8): one execution on the newest of a burst of matching events with the
//! same key. Each new matching event replaces the pending execution of its key (its first step
//! not started) and waits `period`; the burst's first arrival bounds the wait by `maxWait`.

use std::time::Duration;

use serde_json::{Value, json};

/// The longest debounce `period` or `maxWait`.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(30 * 24 * 3600);

/// A debounce duration (`"10m"`): at least a second, at most [`MAX_DEBOUNCE`].
pub fn parse_period(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like \"30s\", \"10m\" or \"1h\": {e}"))?;
    if d < Duration::from_secs(1) || d > MAX_DEBOUNCE {
        return Err("must be between 1s and 30 days".to_owned());
    }
    Ok(d)
}

/// [`parse_period`] in milliseconds.
pub fn period_ms(text: &str) -> Result<i64, String> {
    parse_period(text).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When a new debounced execution's first step is due: `period` after now, or `maxWait` after the
/// burst's first event when that is sooner (never before now).
pub fn due_at(now: i64, first_at: i64, period_ms: i64, max_wait_ms: Option<i64>) -> i64 {
    let by_period = now.saturating_add(period_ms);
    match max_wait_ms {
        Some(max) => by_period.min(first_at.saturating_add(max)).max(now),
        None => by_period,
    }
}

/// Records on a replaced event's outcome that its execution of `workflow_id` was debounced by
/// the event `by`: the entry moves from `matched` to `refused` with reason `debounced`.
pub fn report(outcome: &mut Value, workflow_id: &str, by: &str) {
    let mut moved = Vec::new();
    if let Some(matched) = outcome.get_mut("matched").and_then(Value::as_array_mut) {
        matched.retain(|entry| {
            let mine = entry["workflowId"].as_str() == Some(workflow_id);
            if mine {
                moved.push(entry.clone());
            }
            !mine
        });
    }
    if moved.is_empty() {
        moved.push(json!({"workflowId": workflow_id}));
    }
    let Some(map) = outcome.as_object_mut() else {
        return;
    };
    let refused = map.entry("refused").or_insert_with(|| json!([]));
    if let Some(list) = refused.as_array_mut() {
        for mut entry in moved {
            entry["reason"] = json!("debounced");
            entry["replacedBy"] = json!(by);
            entry["message"] =
                json!("a newer matching event with the same debounce key replaced it");
            list.push(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_after_the_last_event_capped_by_max_wait_from_the_first() {
        assert_eq!(due_at(1_000, 1_000, 500, None), 1_500);
        assert_eq!(due_at(1_000, 1_000, 500, Some(2_000)), 1_500);
        // A burst that started 1.8 s ago with maxWait 2 s: due in 0.2 s, not 0.5 s.
        assert_eq!(due_at(2_800, 1_000, 500, Some(2_000)), 3_000);
        // Past maxWait already: due now.
        assert_eq!(due_at(5_000, 1_000, 500, Some(2_000)), 5_000);
    }

    #[test]
    fn a_replaced_match_is_reported_as_debounced() {
        let mut outcome = json!({"matched": [{"workflowId": "w", "name": "n", "executionId": "x"},
            {"workflowId": "other"}], "notMatched": [], "refused": []});
        report(&mut outcome, "w", "e2");
        assert_eq!(outcome["matched"], json!([{"workflowId": "other"}]));
        assert_eq!(outcome["refused"][0]["reason"], "debounced");
        assert_eq!(outcome["refused"][0]["replacedBy"], "e2");
        assert_eq!(outcome["refused"][0]["executionId"], "x");
    }
}
