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

    pub const ALL: [ExecutionStatus; 6] = [
        ExecutionStatus::Queued,
        ExecutionStatus::Running,
        ExecutionStatus::Waiting,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Paused,
        ExecutionStatus::Cancelled,
    ];

    /// The status a stored or typed string names, exactly as [`Self::as_str`] writes it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No step of a finished execution ever runs again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded | ExecutionStatus::Cancelled
        )
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The life cycle of one step of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not reached yet (a later step of the execution).
    Pending,
    /// Due at its next run time; on the queue.
    Queued,
    /// Claimed by a worker under a lease.
    Running,
    Succeeded,
    /// Its retry schedule is spent or it failed permanently; its execution is paused.
    Failed,
    /// Parked because its workflow was switched off; its execution is paused.
    Blocked,
    Cancelled,
}

impl StepStatus {
    pub const ALL: [StepStatus; 7] = [
        StepStatus::Pending,
        StepStatus::Queued,
        StepStatus::Running,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Blocked,
        StepStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Queued => "queued",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Blocked => "blocked",
            StepStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The statuses a resume or a cancel may still act on: not running, not done.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            StepStatus::Pending | StepStatus::Queued | StepStatus::Failed | StepStatus::Blocked
        )
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
