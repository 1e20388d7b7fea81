//! The pure core of the engine: the decisions that say what happens next, with no I/O, no clock of
//! their own and no database types, so each is unit- and property-tested on its own. The store,
//! the executor and the API apply what these functions decide; they do not decide it again.
//!
//! Dependency rule (ARCHITECTURE.md): `domain` imports only the workspace's pure crates
//! (`switchyard-schemas`, `switchyard-triggers`) and the standard library — never `store`,
//! `queue`, `executor`, `api` or anything async.

pub mod chain;
pub mod concurrency;
pub mod debounce;
pub mod event_view;
pub mod execution;
pub mod job;
pub mod schedule;
pub mod staleness;

pub use chain::{ChainLimits, ChainRefusal, ChainState};
pub use event_view::{EventFacts, EventView};
pub use execution::{
    AttemptEnd, AttemptOutcome, ClaimDecision, ClaimView, ExecutionStatus, NextStep, PauseReason,
    StepState, StepStatus, Transition, cancel_on_reason, cancellable, cancellable_on_event, claim,
    finish, resume,
};
pub use job::Job;
