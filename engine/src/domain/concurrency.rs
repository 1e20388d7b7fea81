//! Per-key concurrency (CONTRACT §8): which executions of a workflow may be active at once.
//!
//! An execution of a workflow with `concurrency: {key, limit}` carries its rendered key. It may
//! start when fewer than `limit` unfinished executions of the same workflow and key come before it
//! in event order (`occurredAt`, then arrival). Unfinished means `queued`, `running`, `waiting` or
//! `paused`: a paused execution keeps its place, so with `limit: 1` an order's `paid` run never
//! starts before its `created` run has finished — succeeded, or cancelled by someone. The rule
//! looks only at the order of executions, never at who got to a worker first, so two workers
//! claiming two executions of one key at the same moment agree on which one runs.

/// Keys longer than this are stored as the SHA-256 of the rendered text.
pub const MAX_KEY_BYTES: usize = 200;

/// A rendered key as it is stored: trimmed, `None` when empty (the execution is not limited),
/// hashed when long. `hash` is the caller's SHA-256 (hex) so this module needs no crypto crate.
pub fn normalize_key(rendered: &str, hash: impl FnOnce(&str) -> String) -> Option<String> {
    let key = rendered.trim();
    if key.is_empty() {
        None
    } else if key.len() > MAX_KEY_BYTES {
        Some(format!("sha256:{}", hash(key)))
    } else {
        Some(key.to_owned())
    }
}

/// The key `"entity"` stands for: the event's entity type and id.
pub fn entity_key(entity_type: &str, entity_id: &str) -> String {
    format!("{entity_type}:{entity_id}")
}

/// Whether an execution may start, given how many unfinished executions of its key come before
/// it and its limit.
pub fn may_start(unfinished_before: i64, limit: i64) -> bool {
    unfinished_before < limit.max(1)
}

/// Given the unfinished executions of one key in event order, each with whether it is held
/// (queued, its first step parked by the gate), those that may start now: the held ones among the
/// first `limit`.
pub fn release<T: Copy>(in_order: &[(T, bool)], limit: i64) -> Vec<T> {
    in_order
        .iter()
        .take(usize::try_from(limit.max(1)).unwrap_or(usize::MAX))
        .filter(|(_, held)| *held)
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_are_trimmed_empty_means_none_long_ones_hashed() {
        let h = |s: &str| format!("h{}", s.len());
        assert_eq!(normalize_key("  ", h), None);
        assert_eq!(normalize_key(" a@b ", h), Some("a@b".to_owned()));
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(normalize_key(&long, h), Some("sha256:h201".to_owned()));
        assert_eq!(entity_key("order", "1001"), "order:1001");
    }

    #[test]
    fn the_first_limit_unfinished_may_start() {
        assert!(may_start(0, 1));
        assert!(!may_start(1, 1));
        assert!(may_start(2, 3));
        assert!(!may_start(3, 3));
        // A limit below one is read as one: a stored zero never blocks a key forever.
        assert!(may_start(0, 0));
    }

    #[test]
    fn release_frees_only_held_executions_within_the_limit() {
        let order = [(1, false), (2, true), (3, true)];
        assert_eq!(release(&order, 1), Vec::<i32>::new());
        assert_eq!(release(&order, 2), vec![2]);
        assert_eq!(release(&order, 5), vec![2, 3]);
    }

    proptest! {
        /// Whatever the order in which claims and releases interleave, at most `limit` executions
        /// of a key are active, and they are always the earliest unfinished ones.
        #[test]
        fn never_more_than_limit_active_and_always_the_earliest(
            limit in 1i64..4,
            n in 1usize..12,
            script in proptest::collection::vec(0u8..3, 1..80),
        ) {
            // 0 = waiting to be claimed, 1 = active, 2 = finished.
            let mut state = vec![0u8; n];
            for (i, op) in script.iter().enumerate() {
                let pick = i % n;
                match op {
                    // A claim: the gate counts unfinished executions before it.
                    0 if state[pick] == 0 => {
                        let before = state[..pick].iter().filter(|s| **s != 2).count() as i64;
                        if may_start(before, limit) {
                            state[pick] = 1;
                        }
                    }
                    // A finish, then the release of what may start now.
                    1 if state[pick] == 1 => {
                        state[pick] = 2;
                        let order: Vec<(usize, bool)> = (0..n)
                            .filter(|&j| state[j] != 2)
                            .map(|j| (j, state[j] == 0))
                            .collect();
                        for j in release(&order, limit) {
                            state[j] = 1;
                        }
                    }
                    _ => {}
                }
                let active: Vec<usize> = (0..n).filter(|&j| state[j] == 1).collect();
                prop_assert!(active.len() as i64 <= limit);
                let unfinished: Vec<usize> = (0..n).filter(|&j| state[j] != 2).collect();
                for j in &active {
                    let rank = unfinished.iter().position(|u| u == j).unwrap() as i64;
                    prop_assert!(rank < limit, "execution {} active at rank {}", j, rank);
                }
            }
        }
    }
}
