//! Matching: which of the tenant's active workflows an event starts, and what is recorded on the
//! event about the others. One decision serves events matched as the API stores them (in batches,
//! [`super::ingest`]) and events a worker matches later (chained events, schedule ticks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use switchyard_triggers::{ConditionEngine, WorkflowConditions};
use uuid::Uuid;

use super::{JobError, MAX_CHAIN_DEPTH, PreparedWorkflow, chain_marker, eval_input};
use crate::store::{EventRecord, NewExecution, Store};

/// Compiled workflow versions (versions never change) and the matching of events against them.
pub struct Matcher {
    store: Store,
    pub conditions: Arc<ConditionEngine>,
    versions: Mutex<HashMap<(Uuid, i64), Arc<PreparedWorkflow>>>,
}

/// What an event starts and what is recorded on it.
pub struct Decision {
    pub executions: Vec<NewExecution>,
    /// `{"matched": […], "notMatched": […], "refused": […]}`.
    pub outcome: Value,
}

impl Matcher {
    pub fn new(store: Store, conditions: Arc<ConditionEngine>) -> Self {
        Self {
            store,
            conditions,
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// A workflow version, compiled once.
    pub async fn prepared(
        &self,
        tenant_id: Uuid,
        workflow_id: Uuid,
        version: i64,
    ) -> Result<Arc<PreparedWorkflow>, JobError> {
        if let Some(found) = self
            .versions
            .lock()
            .ok()
            .and_then(|m| m.get(&(workflow_id, version)).cloned())
        {
            return Ok(found);
        }
        let spec = self
            .store
            .workflow_version(tenant_id, workflow_id, version)
            .await?
            .ok_or_else(|| {
                JobError::Other(format!(
                    "workflow {workflow_id} version {version} is missing"
                ))
            })?;
        let condition =
            match &spec.condition {
                Some(source) => Some(self.conditions.compile(source).map_err(|e| {
                    JobError::Other(format!("stored condition does not compile: {e}"))
                })?),
                None => None,
            };
        let prepared = Arc::new(PreparedWorkflow {
            conditions: WorkflowConditions {
                conditions: spec.conditions.clone(),
                condition,
            },
            spec,
        });
        if let Ok(mut map) = self.versions.lock() {
            if map.len() > 50_000 {
                map.clear();
            }
            map.insert((workflow_id, version), prepared.clone());
        }
        Ok(prepared)
    }

    /// Evaluates an event against the candidate workflow versions (the tenant's active workflows
    /// on its trigger): the executions to start, and a record of what matched, what did not and
    /// why, and what was refused (chain depth or a loop).
    pub async fn decide(
        &self,
        event: &EventRecord,
        candidates: Vec<(Uuid, i64)>,
    ) -> Result<Decision, JobError> {
        // A schedule tick starts only the workflow whose schedule it is (named by its event key),
        // not every active workflow on the same `<entity>_schedule` trigger.
        let candidates = crate::scheduler::tick_candidates(event, candidates);
        let input = eval_input(event);
        let prepared_input = input.prepare();
        let mut executions = Vec::new();
        let mut matched = Vec::new();
        let mut not_matched = Vec::new();
        let mut refused = Vec::new();
        for (workflow_id, version) in candidates {
            let workflow = self.prepared(event.tenant_id, workflow_id, version).await?;
            let report = switchyard_triggers::matching::evaluate_prepared(
                &self.conditions,
                &workflow.conditions,
                &input.entity,
                &prepared_input,
            );
            if !report.matched {
                not_matched.push(json!({
                    "workflowId": workflow_id, "name": workflow.spec.name, "version": version,
                    "conditions": report.conditions, "script": report.script,
                }));
                continue;
            }
            let marker = chain_marker(workflow_id, &event.entity_type, &event.entity_id);
            let reason = if event.depth >= MAX_CHAIN_DEPTH {
                Some(format!("the causal chain reached depth {MAX_CHAIN_DEPTH}"))
            } else if event.chain.contains(&marker) {
                Some("this workflow already ran for this entity in this causal chain".to_owned())
            } else {
                None
            };
            if let Some(reason) = reason {
                refused.push(
                    json!({"workflowId": workflow_id, "name": workflow.spec.name, "reason": reason}),
                );
                continue;
            }
            let kinds: Vec<String> = workflow
                .spec
                .actions
                .iter()
                .map(|a| a.kind.clone())
                .collect();
            let execution = NewExecution::new(
                event.tenant_id,
                workflow_id,
                version,
                event.id,
                &event.entity_type,
                &event.entity_id,
                &kinds,
            );
            matched.push(json!({"workflowId": workflow_id, "name": workflow.spec.name, "executionId": execution.id}));
            executions.push(execution);
        }
        Ok(Decision {
            executions,
            outcome: json!({
                "matched": matched,
                "notMatched": not_matched,
                "refused": refused,
            }),
        })
    }
}
