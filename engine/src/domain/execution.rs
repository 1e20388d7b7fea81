//! The execution state machine (CONTRACT §5): what claiming a step finds, what an attempt's end
//! means for its step, its execution and the next step, and what a resume re-runs. The store reads
//! the state, calls these functions and writes what they return in one transaction.

pub use switchyard_schemas::execution::{ExecutionStatus, StepStatus};

/// Why an execution is paused (`pauseReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PauseReason {
    /// A step failed for good: its retry schedule is spent or the failure was permanent.
    ActionFailed,
    /// Its workflow was switched off.
    WorkflowDisabled,
}

impl PauseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::ActionFailed => "action_failed",
            PauseReason::WorkflowDisabled => "workflow_disabled",
        }
    }
}

/// What an attempt's row records as its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    Retry,
    Failed,
    Cancelled,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }
}

/// What a claim sees of a step's execution and workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimView {
    pub execution: ExecutionStatus,
    pub workflow_active: bool,
    pub workflow_deleted: bool,
}

/// What to do with a step a worker has just taken the lease of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Run it; mark the execution `running` when it is not already.
    Run { start_execution: bool },
    /// Do not run it: the step gets `step`, and the execution `execution` when that is `Some`.
    Park {
        step: StepStatus,
        execution: Option<(ExecutionStatus, Option<PauseReason>)>,
    },
}

/// A cancelled execution, or one whose workflow was deleted, runs nothing more; a workflow switched
/// off parks the step and pauses the execution (`workflow_disabled`) until it is switched on; a
/// finished or paused execution runs nothing (a paused one is resumed explicitly, which queues its
/// step again).
pub fn claim(view: ClaimView) -> ClaimDecision {
    match view.execution {
        ExecutionStatus::Cancelled | ExecutionStatus::Succeeded => ClaimDecision::Park {
            step: StepStatus::Cancelled,
            execution: None,
        },
        _ if view.workflow_deleted => ClaimDecision::Park {
            step: StepStatus::Cancelled,
            execution: Some((ExecutionStatus::Cancelled, None)),
        },
        ExecutionStatus::Paused => ClaimDecision::Park {
            step: StepStatus::Blocked,
            execution: None,
        },
        _ if !view.workflow_active => ClaimDecision::Park {
            step: StepStatus::Blocked,
            execution: Some((ExecutionStatus::Paused, Some(PauseReason::WorkflowDisabled))),
        },
        status => ClaimDecision::Run {
            start_execution: status != ExecutionStatus::Running,
        },
    }
}

/// How an attempt ended, as the executor decided it (retry schedule included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The action succeeded; `wait_ms` is a `delay` step's wait before the next step.
    Succeeded { wait_ms: Option<i64> },
    /// Run the step again at `at` (Unix ms).
    Retry { at: i64 },
    /// Failed for good: the execution pauses.
    Failed,
    /// The execution was cancelled while the step ran: its result is dropped.
    Discarded,
}

/// Where a running step stands when its attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepState {
    /// 0-based position of the step in its execution.
    pub position: i64,
    /// Steps in the execution.
    pub step_count: i64,
    /// The execution's status as the transaction recording the outcome reads it.
    pub execution: ExecutionStatus,
}

/// The next step to queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextStep {
    pub position: i64,
    /// When it is due (Unix ms); it is dispatched for then.
    pub run_at: i64,
}

/// Everything an attempt's end changes, for the store to write and the executor to dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The finished step's new status.
    pub step: StepStatus,
    /// When the step is `Queued` again (a retry): its new due time, dispatched for then.
    pub rerun_at: Option<i64>,
    pub attempt: AttemptOutcome,
    /// Whether the attempt counts as a failure of the step (retries are counted per step).
    pub counts_as_failure: bool,
    /// The step after it, queued now.
    pub next: Option<NextStep>,
    /// The execution's new status, when it changes.
    pub execution: Option<(ExecutionStatus, Option<PauseReason>)>,
    /// Whether the action's effects (a status change and the events it emits, …) are applied.
    pub apply_effects: bool,
}

/// What an attempt's end means. Nothing follows in a cancelled execution: a retry is dropped and
/// no next step is queued (the attempt's own result is still recorded).
pub fn finish(state: StepState, end: AttemptEnd, now: i64) -> Transition {
    let cancelled = state.execution == ExecutionStatus::Cancelled;
    let base = Transition {
        step: StepStatus::Succeeded,
        rerun_at: None,
        attempt: AttemptOutcome::Succeeded,
        counts_as_failure: false,
        next: None,
        execution: None,
        apply_effects: false,
    };
    match end {
        AttemptEnd::Succeeded { wait_ms } => {
            let next_position = state.position + 1;
            let (next, execution) = if cancelled {
                (None, None)
            } else if next_position >= state.step_count {
                (None, Some((ExecutionStatus::Succeeded, None)))
            } else {
                let status = if wait_ms.is_some() {
                    ExecutionStatus::Waiting
                } else {
                    ExecutionStatus::Running
                };
                (
                    Some(NextStep {
                        position: next_position,
                        run_at: now.saturating_add(wait_ms.unwrap_or(0).max(0)),
                    }),
                    (state.execution != status).then_some((status, None)),
                )
            };
            Transition {
                next,
                execution,
                apply_effects: true,
                ..base
            }
        }
        AttemptEnd::Retry { .. } if cancelled => Transition {
            step: StepStatus::Cancelled,
            attempt: AttemptOutcome::Retry,
            counts_as_failure: true,
            ..base
        },
        AttemptEnd::Retry { at } => Transition {
            step: StepStatus::Queued,
            rerun_at: Some(at),
            attempt: AttemptOutcome::Retry,
            counts_as_failure: true,
            ..base
        },
        AttemptEnd::Failed => Transition {
            step: StepStatus::Failed,
            attempt: AttemptOutcome::Failed,
            counts_as_failure: true,
            execution: (!cancelled)
                .then_some((ExecutionStatus::Paused, Some(PauseReason::ActionFailed))),
            ..base
        },
        AttemptEnd::Discarded => Transition {
            step: StepStatus::Cancelled,
            attempt: AttemptOutcome::Cancelled,
            ..base
        },
    }
}

/// A resume re-runs the step a paused execution stopped at (its `current_step`), once more from a
/// fresh retry schedule; anything but a paused execution is not resumed. `None`: nothing to do.
pub fn resume(execution: ExecutionStatus, current_step: i64) -> Option<i64> {
    (execution == ExecutionStatus::Paused).then_some(current_step)
}

/// Whether a cancel applies: anything not finished yet.
pub fn cancellable(execution: ExecutionStatus) -> bool {
    !execution.is_finished()
}

/// Whether an event on one of the workflow's `cancelOn` triggers cancels an execution in this
/// state (CONTRACT §8): only one that has not started a step or is waiting between steps; a
/// running, paused or finished execution is left alone.
pub fn cancellable_on_event(execution: ExecutionStatus) -> bool {
    cancellable(execution)
        && matches!(
            execution,
            ExecutionStatus::Queued | ExecutionStatus::Waiting
        )
}

/// `cancelReason` of an execution cancelled by an event on `trigger` (`cancelOn`).
pub fn cancel_on_reason(trigger: &str) -> String {
    format!("cancel_on:{trigger}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn view(execution: ExecutionStatus, active: bool, deleted: bool) -> ClaimView {
        ClaimView {
            execution,
            workflow_active: active,
            workflow_deleted: deleted,
        }
    }

    #[test]
    fn cancel_on_takes_only_queued_and_waiting_executions() {
        for status in ExecutionStatus::ALL {
            let expected = matches!(status, ExecutionStatus::Queued | ExecutionStatus::Waiting);
            assert_eq!(cancellable_on_event(status), expected, "{status}");
        }
        assert_eq!(cancel_on_reason("order_created"), "cancel_on:order_created");
    }

    #[test]
    fn claims() {
        use ExecutionStatus::*;
        assert_eq!(
            claim(view(Queued, true, false)),
            ClaimDecision::Run {
                start_execution: true
            }
        );
        assert_eq!(
            claim(view(Running, true, false)),
            ClaimDecision::Run {
                start_execution: false
            }
        );
        assert_eq!(
            claim(view(Queued, false, false)),
            ClaimDecision::Park {
                step: StepStatus::Blocked,
                execution: Some((Paused, Some(PauseReason::WorkflowDisabled)))
            }
        );
        assert_eq!(
            claim(view(Waiting, true, true)),
            ClaimDecision::Park {
                step: StepStatus::Cancelled,
                execution: Some((Cancelled, None))
            }
        );
        assert!(matches!(
            claim(view(Cancelled, true, false)),
            ClaimDecision::Park {
                step: StepStatus::Cancelled,
                execution: None
            }
        ));
    }

    #[test]
    fn statuses_round_trip() {
        for s in StepStatus::ALL {
            assert_eq!(StepStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(StepStatus::parse("done"), None);
        assert_eq!(
            ExecutionStatus::parse("waiting"),
            Some(ExecutionStatus::Waiting)
        );
        assert_eq!(ExecutionStatus::parse("Waiting"), None);
    }

    #[test]
    fn last_step_success_finishes_and_delay_waits() {
        let state = StepState {
            position: 1,
            step_count: 2,
            execution: ExecutionStatus::Running,
        };
        let t = finish(state, AttemptEnd::Succeeded { wait_ms: None }, 10);
        assert_eq!(t.execution, Some((ExecutionStatus::Succeeded, None)));
        assert_eq!(t.next, None);
        let first = StepState {
            position: 0,
            ..state
        };
        let t = finish(first, AttemptEnd::Succeeded { wait_ms: Some(500) }, 10);
        assert_eq!(
            t.next,
            Some(NextStep {
                position: 1,
                run_at: 510
            })
        );
        assert_eq!(t.execution, Some((ExecutionStatus::Waiting, None)));
    }

    #[test]
    fn cancel_stops_what_follows() {
        let state = StepState {
            position: 0,
            step_count: 3,
            execution: ExecutionStatus::Cancelled,
        };
        let t = finish(state, AttemptEnd::Succeeded { wait_ms: None }, 0);
        assert_eq!((t.next, t.execution), (None, None));
        let t = finish(state, AttemptEnd::Retry { at: 5 }, 0);
        assert_eq!((t.step, t.rerun_at), (StepStatus::Cancelled, None));
        assert_eq!(finish(state, AttemptEnd::Failed, 0).execution, None);
    }

    /// A model of one execution driven through the state machine by arbitrary attempt outcomes,
    /// cancels, toggles and resumes, the way the store applies it.
    #[derive(Debug)]
    struct Model {
        execution: ExecutionStatus,
        steps: Vec<StepStatus>,
        current: usize,
        active: bool,
        /// Positions that ran, in order.
        ran: Vec<usize>,
        /// Whether a claim decided to run after the execution was cancelled.
        ran_after_cancel: bool,
        /// The position a resume queued, until the next run.
        resumed_at: Option<usize>,
        resumed_right_step: bool,
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        /// The queued step is claimed and its attempt ends so; with `true`, the execution is
        /// cancelled while the attempt runs.
        Attempt(u8, bool),
        Cancel,
        Toggle,
        Resume,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..4, proptest::bool::weighted(0.1)).prop_map(|(k, c)| Op::Attempt(k, c)),
            1 => Just(Op::Cancel),
            1 => Just(Op::Toggle),
            2 => Just(Op::Resume),
        ]
    }

    impl Model {
        fn new(steps: usize) -> Self {
            let mut statuses = vec![StepStatus::Pending; steps];
            statuses[0] = StepStatus::Queued;
            Self {
                execution: ExecutionStatus::Queued,
                steps: statuses,
                current: 0,
                active: true,
                ran: Vec::new(),
                ran_after_cancel: false,
                resumed_at: None,
                resumed_right_step: true,
            }
        }

        fn apply(&mut self, op: Op) {
            match op {
                Op::Attempt(kind, cancel_midway) => {
                    let Some(position) = self.steps.iter().position(|s| *s == StepStatus::Queued)
                    else {
                        return;
                    };
                    let decision = claim(ClaimView {
                        execution: self.execution,
                        workflow_active: self.active,
                        workflow_deleted: false,
                    });
                    match decision {
                        ClaimDecision::Park { step, execution } => {
                            self.steps[position] = step;
                            if let Some((status, _)) = execution {
                                self.execution = status;
                            }
                        }
                        ClaimDecision::Run { .. } => {
                            if self.execution == ExecutionStatus::Cancelled {
                                self.ran_after_cancel = true;
                            }
                            if let Some(at) = self.resumed_at.take() {
                                self.resumed_right_step &= at == position;
                            }
                            self.execution = ExecutionStatus::Running;
                            self.steps[position] = StepStatus::Running;
                            self.ran.push(position);
                            if cancel_midway {
                                // The cancel leaves the running step alone; its attempt finds
                                // the execution cancelled when it ends.
                                self.execution = ExecutionStatus::Cancelled;
                                for s in &mut self.steps {
                                    if s.is_idle() {
                                        *s = StepStatus::Cancelled;
                                    }
                                }
                            }
                            let end = match kind {
                                0 if cancel_midway => AttemptEnd::Discarded,
                                0 | 1 => AttemptEnd::Succeeded { wait_ms: None },
                                2 => AttemptEnd::Retry { at: 0 },
                                _ => AttemptEnd::Failed,
                            };
                            let t = finish(
                                StepState {
                                    position: position as i64,
                                    step_count: self.steps.len() as i64,
                                    execution: self.execution,
                                },
                                end,
                                0,
                            );
                            self.steps[position] = t.step;
                            if let Some(next) = t.next {
                                self.steps[next.position as usize] = StepStatus::Queued;
                                self.current = next.position as usize;
                            }
                            if let Some((status, _)) = t.execution {
                                self.execution = status;
                            }
                        }
                    }
                }
                Op::Cancel => {
                    if cancellable(self.execution) {
                        self.execution = ExecutionStatus::Cancelled;
                        for s in &mut self.steps {
                            if s.is_idle() {
                                *s = StepStatus::Cancelled;
                            }
                        }
                    }
                }
                Op::Toggle => self.active = !self.active,
                Op::Resume => {
                    if let Some(position) = resume(self.execution, self.current as i64) {
                        let position = position as usize;
                        if self.steps[position].is_idle() {
                            self.steps[position] = StepStatus::Queued;
                            self.resumed_at = Some(position);
                        }
                        self.execution = ExecutionStatus::Queued;
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn state_machine_invariants(steps in 1usize..5, ops in proptest::collection::vec(op(), 0..60)) {
            let mut model = Model::new(steps);
            for op in ops {
                model.apply(op);
                // At most one step is ever queued or running: an execution runs in order.
                let live = model.steps.iter().filter(|s| matches!(s, StepStatus::Queued | StepStatus::Running)).count();
                prop_assert!(live <= 1, "{model:?}");
                // No step lost: an unfinished execution that is not paused has its current step
                // queued or running (someone will run it).
                if matches!(model.execution, ExecutionStatus::Queued | ExecutionStatus::Running | ExecutionStatus::Waiting) {
                    prop_assert_eq!(model.steps[model.current], StepStatus::Queued, "{:?}", model);
                }
                // A paused execution has its current step stopped, waiting for a resume, or queued
                // (a step it was paused at by a toggle is parked when claimed).
                if model.execution == ExecutionStatus::Paused {
                    prop_assert!(matches!(model.steps[model.current], StepStatus::Failed | StepStatus::Blocked | StepStatus::Queued), "{model:?}");
                }
                // Succeeded means every step succeeded.
                if model.execution == ExecutionStatus::Succeeded {
                    prop_assert!(model.steps.iter().all(|s| *s == StepStatus::Succeeded), "{model:?}");
                }
            }
            prop_assert!(!model.ran_after_cancel, "{model:?}");
            prop_assert!(model.resumed_right_step, "{model:?}");
            // Steps ran in order: a position runs only after every earlier one (retries repeat it).
            let mut highest = 0;
            for &p in &model.ran {
                prop_assert!(p == highest || p == highest + 1, "steps ran out of order: {model:?}");
                highest = p;
            }
        }
    }
}
