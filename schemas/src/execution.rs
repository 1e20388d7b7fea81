//! Executions and their steps, as the API shows them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The life cycle of an execution (CONTRACT §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Waiting,
    Succeeded,
    Paused,
    Cancelled,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Waiting => "waiting",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Paused => "paused",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    /// No step of a finished execution ever runs again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded | ExecutionStatus::Cancelled
        )
    }
}
