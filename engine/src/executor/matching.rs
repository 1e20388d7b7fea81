//! Matching: which of the tenant's active workflows an event starts, and what is recorded on the
//! event about the others. One decision serves events matched as the API stores them (in batches,
//! [`super::ingest`]) and events a worker matches later (chained events, schedule ticks).
//!
//! Conditions are tenant code, so they are bounded and kept away from everyone else: an event's
//! Rhai conditions run on the blocking pool (never on the threads that serve HTTP), under a
//! budget for all of its tenant's workflows (`--match-budget`), in the tenant's own lane (one
//! evaluation at a time per tenant and process), so a tenant whose conditions are slow waits
//! for itself and nobody else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_triggers::{ConditionEngine, EvalInput, MatchReport, WorkflowConditions};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::{JobError, MAX_CHAIN_DEPTH, PreparedWorkflow, chain_marker, event_view};
use crate::store::{EventRecord, NewExecution, Store};

/// Reason recorded for a workflow left unevaluated because the event's matching budget was spent.
pub const BUDGET_EXCEEDED: &str = "budget_exceeded";
/// Reason recorded for a match refused because its causal chain started enough executions.
pub const CHAIN_LIMIT: &str = "chain_limit";

/// Above this many tenants with a lane, idle lanes are forgotten (they are made again on demand).
const LANES_KEPT: usize = 10_000;

/// How matching is bounded (CONTRACT §7).
#[derive(Debug, Clone, Copy)]
pub struct MatchLimits {
    /// Time for one event's conditions over all of its tenant's workflows.
    pub budget: Duration,
    /// Executions one root event and everything its steps emit may start.
    pub max_chain_executions: u32,
}

impl Default for MatchLimits {
    fn default() -> Self {
        Self {
            budget: Duration::from_millis(200),
            max_chain_executions: 100,
        }
    }
}

/// Compiled workflow versions (versions never change) and the matching of events against them.
pub struct Matcher {
    store: Store,
    pub conditions: Arc<ConditionEngine>,
    pub limits: MatchLimits,
    versions: Mutex<HashMap<(Uuid, i64), Arc<PreparedWorkflow>>>,
    /// Per tenant, one permit: the tenant's lane for condition evaluation.
    lanes: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
}

/// What an event starts and what is recorded on it.
#[derive(Debug, Default)]
pub struct Decision {
    pub executions: Vec<NewExecution>,
    matched: Vec<Value>,
    not_matched: Vec<Value>,
    refused: Vec<Value>,
}

impl Decision {
    /// `{"matched": […], "notMatched": […], "refused": […]}`: recorded on the event.
    pub fn outcome(&self) -> Value {
        json!({
            "matched": self.matched,
            "notMatched": self.not_matched,
            "refused": self.refused,
        })
    }

    /// Keeps the first `room` executions; the others are refused with reason `chain_limit`
    /// (their causal chain already started `limit` executions).
    pub fn limit_chain(&mut self, room: usize, limit: u32) {
        if self.executions.len() <= room {
            return;
        }
        let over: Vec<NewExecution> = self.executions.drain(room..).collect();
        for execution in over {
            let Some(at) = self
                .matched
                .iter()
                .position(|m| m["executionId"] == json!(execution.id))
            else {
                continue;
            };
            let entry = self.matched.remove(at);
            self.refused.push(json!({
                "workflowId": entry["workflowId"], "name": entry["name"],
                "reason": CHAIN_LIMIT,
                "message": format!("the causal chain of this event already started {limit} executions (--max-chain-executions)"),
            }));
        }
    }
}

/// One candidate's result, decided in the tenant's lane.
enum Evaluated {
    Report(MatchReport),
    /// The budget was spent before (or while) this workflow was evaluated.
    OverBudget,
}

impl Matcher {
    pub fn new(store: Store, conditions: Arc<ConditionEngine>, limits: MatchLimits) -> Self {
        Self {
            store,
            conditions,
            limits,
            versions: Mutex::new(HashMap::new()),
            lanes: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's evaluation lane.
    fn lane(&self, tenant_id: Uuid) -> Arc<Semaphore> {
        let Ok(mut lanes) = self.lanes.lock() else {
            // A poisoned map only costs isolation, never correctness.
            return Arc::new(Semaphore::new(1));
        };
        if lanes.len() > LANES_KEPT {
            lanes.retain(|_, lane| Arc::strong_count(lane) > 1);
        }
        lanes
            .entry(tenant_id)
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone()
    }

    /// Evaluates `workflows` against `input` in `tenant_id`'s lane, on the blocking pool, within
    /// the matching budget (counted from when the lane is the event's, not while it queues).
    pub async fn evaluate_in_lane(
        &self,
        tenant_id: Uuid,
        input: EvalInput,
        workflows: Vec<WorkflowConditions>,
    ) -> Result<Vec<Option<MatchReport>>, JobError> {
        let scripted = workflows.iter().any(|w| w.condition.is_some());
        if !scripted {
            // Only the `conditions` maps: bounded and cheap, so no hop to another thread.
            return Ok(workflows
                .iter()
                .map(|w| {
                    Some(switchyard_triggers::matching::evaluate(
                        &self.conditions,
                        w,
                        &input,
                    ))
                })
                .collect());
        }
        let lane = self.lane(tenant_id);
        let _permit = lane
            .acquire_owned()
            .await
            .map_err(|_| JobError::Other("a matching lane closed".to_owned()))?;
        let conditions = self.conditions.clone();
        let budget = self.limits.budget;
        let evaluated = tokio::task::spawn_blocking(move || {
            evaluate_within(&conditions, &input, &workflows, budget)
        })
        .await
        .map_err(|e| JobError::Other(format!("matching stopped: {e}")))?;
        Ok(evaluated
            .into_iter()
            .map(|e| match e {
                Evaluated::Report(report) => Some(report),
                Evaluated::OverBudget => None,
            })
            .collect())
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
    /// why, what was left unevaluated when the budget was spent, and what was refused (chain
    /// depth or a loop). The chain's execution count is applied by the caller, in its transaction
    /// ([`Decision::limit_chain`]).
    pub async fn decide(
        &self,
        event: &EventRecord,
        candidates: Vec<(Uuid, i64)>,
    ) -> Result<Decision, JobError> {
        // A schedule tick starts only the workflow whose schedule it is (named by its event key),
        // not every active workflow on the same `<entity>_schedule` trigger.
        let candidates =
            crate::domain::schedule::tick_candidates(&event.trigger, &event.event_key, candidates);
        let mut workflows = Vec::with_capacity(candidates.len());
        for (workflow_id, version) in candidates {
            workflows.push((
                workflow_id,
                version,
                self.prepared(event.tenant_id, workflow_id, version).await?,
            ));
        }
        let reports = self
            .evaluate_in_lane(
                event.tenant_id,
                event_view(event).conditions(event.tenant_id),
                workflows.iter().map(|w| w.2.conditions.clone()).collect(),
            )
            .await?;
        let mut decision = Decision::default();
        for ((workflow_id, version, workflow), report) in workflows.into_iter().zip(reports) {
            let Some(report) = report else {
                decision.refused.push(json!({
                    "workflowId": workflow_id, "name": workflow.spec.name, "version": version,
                    "reason": BUDGET_EXCEEDED,
                    "message": format!(
                        "not evaluated: the event's matching budget of {}ms was spent (--match-budget)",
                        self.limits.budget.as_millis()
                    ),
                }));
                continue;
            };
            if !report.matched {
                decision.not_matched.push(json!({
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
                decision.refused.push(
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
            let mut execution = NewExecution::new(
                event.tenant_id,
                workflow_id,
                version,
                event.id,
                &event.entity_type,
                &event.entity_id,
                &kinds,
            );
            if let Some(concurrency) = &workflow.spec.concurrency {
                let key = super::flow_key::render_key(&concurrency.key, event).await;
                execution =
                    execution.limited(event.occurred_at.timestamp_millis(), key, concurrency.limit);
            }
            if let Some(debounce) = &workflow.spec.debounce {
                let key = super::flow_key::render_key(&debounce.key, event).await;
                let ms = crate::domain::debounce::period_ms;
                // Checked when the workflow was saved; a stored spec that no longer parses is
                // not debounced rather than not run.
                if let Ok(period) = ms(&debounce.period) {
                    let max_wait = debounce.max_wait.as_deref().and_then(|m| ms(m).ok());
                    execution = execution.debounced(key, period, max_wait);
                }
            }
            if !workflow.spec.cancel_on.is_empty() {
                execution.cancel_keys = super::cancel_on::execution_keys(
                    &workflow.spec.cancel_on,
                    event,
                    &event_view(event),
                );
            }
            decision.matched.push(json!({"workflowId": workflow_id, "name": workflow.spec.name, "executionId": execution.id}));
            decision.executions.push(execution);
        }
        Ok(decision)
    }
}

/// Evaluates workflows in order until `budget` is spent; each condition gets at most what is
/// left. A condition stopped by the budget (not by its own timeout) and every workflow after it
/// are over budget. Synchronous: runs on the blocking pool.
fn evaluate_within(
    conditions: &ConditionEngine,
    input: &EvalInput,
    workflows: &[WorkflowConditions],
    budget: Duration,
) -> Vec<Evaluated> {
    let started = Instant::now();
    let deadline = started + budget;
    let prepared = input.prepare();
    let mut out = Vec::with_capacity(workflows.len());
    for workflow in workflows {
        if Instant::now() >= deadline {
            out.push(Evaluated::OverBudget);
            continue;
        }
        let report = switchyard_triggers::matching::evaluate_prepared_until(
            conditions,
            workflow,
            &input.entity,
            &prepared,
            deadline,
        );
        let stopped_by_budget = report.script.as_ref().is_some_and(|s| s.result.is_none())
            && Instant::now() >= deadline;
        out.push(if stopped_by_budget {
            Evaluated::OverBudget
        } else {
            Evaluated::Report(report)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(engine: &ConditionEngine) -> WorkflowConditions {
        WorkflowConditions {
            conditions: serde_json::Map::new(),
            condition: Some(engine.compile("loop {}").expect("compiles")),
        }
    }

    #[test]
    fn the_budget_bounds_all_workflows_of_an_event() {
        let engine = ConditionEngine::new(switchyard_triggers::ScriptLimits {
            max_operations: 0,
            timeout: Duration::from_millis(30),
            ..Default::default()
        });
        let workflows: Vec<_> = (0..10).map(|_| spin(&engine)).collect();
        let started = Instant::now();
        let out = evaluate_within(
            &engine,
            &EvalInput::default(),
            &workflows,
            Duration::from_millis(75),
        );
        // The budget stops it after about 75 ms (bounded loosely: wall-clock scripts stretch on
        // a loaded CI machine; what shows the budget works is the `OverBudget` below).
        assert!(started.elapsed() < Duration::from_secs(1));
        let reported = out
            .iter()
            .filter(|e| matches!(e, Evaluated::Report(_)))
            .count();
        // On a quiet machine two run their full 30 ms and the third is cut by the budget; on a
        // busy one fewer finish. Either way some ran, and once the budget is spent nothing after
        // it is evaluated.
        assert!((1..=2).contains(&reported), "{reported} reported");
        let first_cut = out
            .iter()
            .position(|e| matches!(e, Evaluated::OverBudget))
            .expect("the budget stopped the evaluation");
        assert!(
            out[first_cut..]
                .iter()
                .all(|e| matches!(e, Evaluated::OverBudget))
        );
    }
}
