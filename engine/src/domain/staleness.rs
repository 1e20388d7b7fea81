//! Stale store deliveries (CONTRACT §8): whether an inbound store event is older than what the
//! entity store already holds for its entity.
//!
//! Stores deliver out of order. Each delivery carries the resource's own modification time (the
//! *source time*: Shopify `updated_at`, WooCommerce `date_modified_gmt`), and the entity store
//! keeps the newest source time it has applied (`entities.source_modified_at`). The store reads
//! that time in the write transaction (under a lock on PostgreSQL, under SQLite's write lock),
//! asks [`decide`], and applies the answer:
//!
//! - **no source time** on the event (`POST /api/events`, emitted events, a store payload without
//!   the field): never stale; the stored source time is left as it is;
//! - **no stored source time** (a new entity, or one only written by events without one): fresh;
//! - **newer**: fresh; the stored source time advances to it;
//! - **equal**: fresh too. One change of a store resource is often sent under several topics with
//!   the same modification time (Shopify's `orders/paid` and `orders/updated`), each a delivery of
//!   its own that must run; a redelivery of one delivery is recognised by its delivery id
//!   (`eventId`) and its digest before it gets here;
//! - **older**: stale. The event is stored (so it can be looked at) with outcome reason
//!   [`STALE`], starts nothing, and leaves the entity as it is.

use serde_json::{Value, json};

/// Reason recorded on an event older than its entity's stored source time.
pub const STALE: &str = "stale";

/// What an event's source time means against the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The event has no source time: it is never stale and leaves the stored time alone.
    Unsourced,
    /// Applies; the entity's stored source time becomes `source_modified_at`.
    Fresh { source_modified_at: i64 },
    /// Older than `stored`: changes nothing, matches nothing.
    Stale { stored: i64 },
}

impl Freshness {
    pub fn is_stale(self) -> bool {
        matches!(self, Freshness::Stale { .. })
    }

    /// The entity's stored source time once this event is applied (`stored` when it is not).
    pub fn stored_after(self, stored: Option<i64>) -> Option<i64> {
        match self {
            Freshness::Fresh { source_modified_at } => Some(source_modified_at),
            Freshness::Unsourced | Freshness::Stale { .. } => stored,
        }
    }
}

/// Decides an event with source time `incoming` (Unix ms) against the entity's `stored` one.
pub fn decide(incoming: Option<i64>, stored: Option<i64>) -> Freshness {
    match (incoming, stored) {
        (None, _) => Freshness::Unsourced,
        (Some(incoming), Some(stored)) if incoming < stored => Freshness::Stale { stored },
        (Some(source_modified_at), _) => Freshness::Fresh { source_modified_at },
    }
}

/// The outcome recorded on a stale event, from the one matching decided: every workflow it
/// would have started is refused with reason [`STALE`] (nothing starts), the others stay where
/// matching put them, and `reason` says why at the top level, with both times (RFC 3339).
pub fn stale_outcome(matched_outcome: Option<&Value>, incoming: i64, stored: i64) -> Value {
    let list = |name: &str| {
        matched_outcome
            .and_then(|o| o.get(name))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let message = "the store sent an older version of this entity than the one already stored";
    let mut refused = list("refused");
    refused.extend(list("matched").into_iter().map(|m| {
        json!({
            "workflowId": m.get("workflowId").cloned().unwrap_or(Value::Null),
            "name": m.get("name").cloned().unwrap_or(Value::Null),
            "reason": STALE,
            "message": message,
        })
    }));
    json!({
        "matched": [],
        "notMatched": list("notMatched"),
        "refused": refused,
        "reason": STALE,
        "message": message,
        "sourceModifiedAt": rfc3339(incoming),
        "storedSourceModifiedAt": rfc3339(stored),
    })
}

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_is_stale_and_keeps_the_stored_time() {
        let d = decide(Some(1_000), Some(2_000));
        assert_eq!(d, Freshness::Stale { stored: 2_000 });
        assert!(d.is_stale());
        assert_eq!(d.stored_after(Some(2_000)), Some(2_000));
    }

    #[test]
    fn equal_is_fresh() {
        let d = decide(Some(2_000), Some(2_000));
        assert!(!d.is_stale());
        assert_eq!(d.stored_after(Some(2_000)), Some(2_000));
    }

    #[test]
    fn newer_advances_the_stored_time() {
        let d = decide(Some(3_000), Some(2_000));
        assert_eq!(
            d,
            Freshness::Fresh {
                source_modified_at: 3_000
            }
        );
        assert_eq!(d.stored_after(Some(2_000)), Some(3_000));
    }

    #[test]
    fn nothing_stored_is_fresh() {
        let d = decide(Some(5), None);
        assert!(!d.is_stale());
        assert_eq!(d.stored_after(None), Some(5));
    }

    #[test]
    fn no_source_time_is_never_stale_and_leaves_the_stored_time() {
        for stored in [None, Some(i64::MAX), Some(0)] {
            let d = decide(None, stored);
            assert_eq!(d, Freshness::Unsourced);
            assert_eq!(d.stored_after(stored), stored);
        }
    }

    #[test]
    fn a_sequence_keeps_the_newest_time() {
        let mut stored = None;
        let mut stale = Vec::new();
        for t in [5, 3, 7, 7, 6, 9] {
            let d = decide(Some(t), stored);
            stale.push(d.is_stale());
            stored = d.stored_after(stored);
        }
        assert_eq!(stale, [false, true, false, false, true, false]);
        assert_eq!(stored, Some(9));
    }

    #[test]
    fn stale_outcome_refuses_what_would_have_matched() {
        let matched = json!({
            "matched": [{"workflowId": "w1", "name": "A", "executionId": "x"}],
            "notMatched": [{"workflowId": "w2", "name": "B"}],
            "refused": [],
        });
        let out = stale_outcome(Some(&matched), 1_000, 2_000);
        assert_eq!(out["matched"], json!([]));
        assert_eq!(out["reason"], json!(STALE));
        assert_eq!(out["refused"][0]["workflowId"], json!("w1"));
        assert_eq!(out["refused"][0]["reason"], json!(STALE));
        assert_eq!(out["notMatched"][0]["workflowId"], json!("w2"));
        assert_eq!(out["sourceModifiedAt"], json!("1970-01-01T00:00:01.000Z"));
        assert_eq!(
            out["storedSourceModifiedAt"],
            json!("1970-01-01T00:00:02.000Z")
        );
        let empty = stale_outcome(None, 1, 2);
        assert_eq!(empty["refused"], json!([]));
        assert_eq!(empty["reason"], json!(STALE));
    }
}
