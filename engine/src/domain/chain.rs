//! Causal chains (CONTRACT §5, §7): whether a match may start an execution, given the chain of
//! events that led to its event. A chain stops at a depth, never runs a workflow twice for the same
//! entity, and starts at most a bounded number of executions from one root event.

use std::fmt;

/// The operator's bounds on a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLimits {
    /// Events a chain may nest (a root event is depth 0).
    pub max_depth: i64,
    /// Executions one root event and everything its steps emit may start.
    pub max_executions: i64,
}

/// Where a match stands in its chain.
#[derive(Debug, Clone, Copy)]
pub struct ChainState<'a> {
    /// The depth of the event being matched.
    pub depth: i64,
    /// Markers of the (workflow, entity) pairs that already ran in this chain.
    pub markers: &'a [String],
    /// Executions the chain's root has started so far, this match's earlier siblings included.
    pub executions: i64,
}

/// Why a match was refused; `code()` is the reason recorded in the match report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainRefusal {
    Depth(i64),
    Loop,
    Executions(i64),
}

impl ChainRefusal {
    /// The machine-readable reason (`chain_limit` for the executions bound, CONTRACT §7).
    pub fn code(&self) -> &'static str {
        match self {
            ChainRefusal::Depth(_) => "chain_depth",
            ChainRefusal::Loop => "chain_loop",
            ChainRefusal::Executions(_) => "chain_limit",
        }
    }
}

impl fmt::Display for ChainRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainRefusal::Depth(max) => write!(f, "the causal chain reached depth {max}"),
            ChainRefusal::Loop => {
                f.write_str("this workflow already ran for this entity in this causal chain")
            }
            ChainRefusal::Executions(max) => write!(
                f,
                "the causal chain of this event's root already started {max} executions (--max-chain-executions)"
            ),
        }
    }
}

/// Whether a match whose (workflow, entity) marker is `marker` may start an execution.
pub fn admit(limits: ChainLimits, state: ChainState<'_>, marker: &str) -> Result<(), ChainRefusal> {
    if state.depth >= limits.max_depth {
        return Err(ChainRefusal::Depth(limits.max_depth));
    }
    if state.markers.iter().any(|m| m == marker) {
        return Err(ChainRefusal::Loop);
    }
    if state.executions >= limits.max_executions {
        return Err(ChainRefusal::Executions(limits.max_executions));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: ChainLimits = ChainLimits {
        max_depth: 8,
        max_executions: 100,
    };

    #[test]
    fn each_bound_refuses_with_its_reason() {
        let markers = vec!["w1:Order:o1".to_owned()];
        let state = |depth, executions| ChainState {
            depth,
            markers: &markers,
            executions,
        };
        assert_eq!(admit(LIMITS, state(0, 0), "w2:Order:o1"), Ok(()));
        assert_eq!(
            admit(LIMITS, state(8, 0), "w2:Order:o1"),
            Err(ChainRefusal::Depth(8))
        );
        assert_eq!(
            admit(LIMITS, state(1, 0), "w1:Order:o1"),
            Err(ChainRefusal::Loop)
        );
        let refused = admit(LIMITS, state(1, 100), "w2:Order:o1").expect_err("over the limit");
        assert_eq!(refused.code(), "chain_limit");
        assert!(refused.to_string().contains("100"), "{refused}");
    }

    /// A breadth-first fan-out (every execution emits an event that `fan_out` workflows match,
    /// each once per entity) stays within both bounds, however wide.
    fn simulate(limits: ChainLimits, fan_out: usize, entities: usize) -> (i64, i64) {
        let mut started = 0_i64;
        let mut deepest = 0_i64;
        // (depth, markers) of events still to match.
        let mut frontier: Vec<(i64, Vec<String>, usize)> = vec![(0, Vec::new(), 0)];
        while let Some((depth, markers, entity)) = frontier.pop() {
            for workflow in 0..fan_out {
                let marker = format!("w{workflow}:e{entity}");
                let state = ChainState {
                    depth,
                    markers: &markers,
                    executions: started,
                };
                if admit(limits, state, &marker).is_ok() {
                    started += 1;
                    deepest = deepest.max(depth + 1);
                    let mut next = markers.clone();
                    next.push(marker);
                    frontier.push((depth + 1, next, (entity + workflow) % entities));
                }
            }
        }
        (started, deepest)
    }

    proptest! {
        #[test]
        fn fan_out_stays_within_both_bounds(
            fan_out in 1usize..12,
            entities in 1usize..4,
            max_depth in 1i64..10,
            max_executions in 1i64..300,
        ) {
            let limits = ChainLimits { max_depth, max_executions };
            let (started, deepest) = simulate(limits, fan_out, entities);
            prop_assert!(started <= max_executions);
            prop_assert!(deepest <= max_depth);
        }
    }
}
