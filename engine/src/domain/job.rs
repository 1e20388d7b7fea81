//! The jobs a queue carries (CONTRACT §7, QUEUE-NOTES): small, versioned, ids only. A pure type,
//! so the store can build the jobs a transition asks for without depending on a queue.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a worker is asked to do. Small and versioned: it names rows, never copies them. The tenant
/// is named too, so that a queue can serve tenants in turn (CONTRACT §7 "Fair queuing") without
/// reading the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Match a stored event against the tenant's workflows and start executions.
    ProcessEvent {
        /// Absent from version 1 jobs: those decode with [`Job::UNKNOWN_TENANT`].
        #[serde(default)]
        tenant_id: Uuid,
        event_id: Uuid,
    },
    /// Run (or re-run) one step of an execution.
    RunStep {
        #[serde(default)]
        tenant_id: Uuid,
        step_id: Uuid,
    },
}

/// The wire form of a job: `{"v": 2, "kind": "run_step", "tenant_id": "…", "step_id": "…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEnvelope {
    pub v: u8,
    #[serde(flatten)]
    pub job: Job,
}

impl Job {
    pub const VERSION: u8 = 2;
    /// The oldest version this build still runs. Version 1 jobs (no tenant) may still sit in a
    /// Redis stream or delayed set after an upgrade; they run as before, served in the turn of
    /// [`Job::UNKNOWN_TENANT`] (the worker reads the tenant from the row, not from the job).
    pub const OLDEST_VERSION: u8 = 1;
    /// The tenant of a job that does not name one (version 1).
    pub const UNKNOWN_TENANT: Uuid = Uuid::nil();

    /// The tenant whose turn this job is served in.
    pub fn tenant_id(&self) -> Uuid {
        match self {
            Job::ProcessEvent { tenant_id, .. } | Job::RunStep { tenant_id, .. } => *tenant_id,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(&JobEnvelope {
            v: Self::VERSION,
            job: *self,
        })
        .unwrap_or_default()
    }

    /// `None` for anything that is not a job of a version this build understands.
    pub fn decode(text: &str) -> Option<Job> {
        serde_json::from_str::<JobEnvelope>(text)
            .ok()
            .filter(|e| (Self::OLDEST_VERSION..=Self::VERSION).contains(&e.v))
            .map(|e| e.job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_and_unknown_versions_are_refused() {
        let job = Job::RunStep {
            tenant_id: Uuid::now_v7(),
            step_id: Uuid::now_v7(),
        };
        let text = job.encode();
        assert!(text.contains("\"v\":2"), "{text}");
        assert!(text.contains("\"kind\":\"run_step\""), "{text}");
        assert_eq!(Job::decode(&text), Some(job));
        assert_eq!(Job::decode(&text.replace("\"v\":2", "\"v\":9")), None);
        assert_eq!(Job::decode(&text.replace("\"v\":2", "\"v\":0")), None);
        assert_eq!(Job::decode("garbage"), None);
    }

    #[test]
    fn version_one_jobs_still_run_in_the_unknown_tenants_turn() {
        let event_id = Uuid::now_v7();
        let text = format!(r#"{{"v":1,"kind":"process_event","event_id":"{event_id}"}}"#);
        let job = Job::decode(&text).expect("a version 1 job decodes");
        assert_eq!(
            job,
            Job::ProcessEvent {
                tenant_id: Job::UNKNOWN_TENANT,
                event_id
            }
        );
        assert_eq!(job.tenant_id(), Job::UNKNOWN_TENANT);
    }
}
