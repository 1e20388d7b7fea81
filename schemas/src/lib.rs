//! Wire types of Switchyard: what goes over the API and onto the queue. No I/O, no tokio.
//!
//! Field names are camelCase, as in the seed API documents; ids are UUIDs and timestamps RFC 3339.

pub mod entity;
pub mod envelope;
pub mod event;
pub mod execution;
pub mod trigger;
pub mod workflow;

pub use entity::EntityType;
pub use envelope::{ErrorBody, ErrorCode, ErrorEnvelope};
pub use trigger::TriggerInfo;
pub use workflow::{
    ActionSpec, CancelOn, Concurrency, Debounce, Schedule, WorkflowConfig, WorkflowRecord,
};
