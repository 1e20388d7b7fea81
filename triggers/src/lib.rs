//! Switchyard's trigger side: the trigger catalog, event-to-workflow matching (declarative
//! `conditions` and sandboxed Rhai `condition` scripts) and cron schedules.
//!
//! Pure by design: no I/O, no clock reads, no async. The engine owns storage and time and calls
//! into this crate with values, which keeps everything here testable without a runtime.

pub mod catalog;
pub mod conditions;
pub mod error;
pub mod matching;
pub mod schedule;
pub mod script;

pub use catalog::{
    TRIGGER_NAMESPACE, Trigger, all, by_code, for_entity, resolve, trigger_guid,
    triggers_for_status,
};
pub use conditions::{ConditionResult, conditions_hold, lookup, validate_conditions, values_equal};
pub use error::TriggerError;
pub use matching::{MatchReport, ScriptResult, WorkflowConditions, evaluate, evaluate_prepared};
pub use schedule::CronSchedule;
pub use script::{
    CompileError, CompiledCondition, ConditionEngine, EvalError, EvalInput, PreparedInput,
    ScriptLimit, ScriptLimits,
};
