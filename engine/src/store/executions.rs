//! Executions, steps and attempts: the durable state of running workflows. Workers claim a step
//! with a lease (a compare-and-set on its row), record each attempt, and commit a step's outcome —
//! with its effects and the next step — in one transaction, before the job is acknowledged.

use serde_json::{Map, Value, json};
use switchyard_actions::RecordKind;
use switchyard_schemas::EntityType;
use uuid::Uuid;

use std::collections::HashMap;

use super::events::{EventRecord, NewEvent, entity_for_update, insert_event};
use super::row::{Columns, aliased};
use super::tenants::{TenantRecord, parse_uuid, tenant_and_id};
use super::{Store, StoreError, StoreResult, from_ms, now_ms};
use crate::domain::{
    self, AttemptEnd, ClaimDecision, ExecutionStatus, Job, PauseReason, StepState, StepStatus,
};

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Consecutive failed attempts after which an endpoint is disabled for its tenant.
pub const ENDPOINT_FAILURE_LIMIT: i64 = 100;

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub workflow_id: Uuid,
    pub workflow_version: i64,
    pub event_id: Uuid,
    pub entity_type: String,
    pub entity_id: String,
    pub status: ExecutionStatus,
    pub pause_reason: Option<String>,
    /// `cancel_on:<trigger code>`, `manual` or `workflow_deleted`; null unless cancelled.
    pub cancel_reason: Option<String>,
    pub step_count: i64,
    pub current_step: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    pub number: i64,
    pub worker: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub output: Option<Value>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub id: Uuid,
    pub position: i64,
    pub action_type: String,
    pub status: StepStatus,
    pub attempt_count: i64,
    pub next_run_at: Option<chrono::DateTime<chrono::Utc>>,
    pub output: Option<Value>,
    pub last_error: Option<String>,
    pub attempts: Vec<AttemptRecord>,
}

/// A step a worker now holds the lease on, with what running it needs.
#[derive(Debug, Clone)]
pub struct ClaimedStep {
    pub step_id: Uuid,
    pub position: i64,
    pub action_type: String,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
    /// Failed attempts since the step was last started or resumed.
    pub failures: i64,
    /// The attempt opened by the claim.
    pub attempt_id: Uuid,
    pub execution: ExecutionRecord,
    /// The event that started the execution.
    pub event: EventRecord,
    /// The entity's latest data in the entity store, as of the claim.
    pub entity: Option<Value>,
    pub tenant: Option<TenantRecord>,
    /// The tenant's disabled outbound endpoints: (url, reason).
    pub disabled_endpoints: Vec<(String, String)>,
    /// The execution's concurrency key and limit, when its workflow has one.
    pub concurrency: Option<ConcurrencyKey>,
}

/// A workflow's concurrency key as one execution carries it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConcurrencyKey {
    pub workflow_id: String,
    pub key: String,
    pub limit: i64,
}

/// An execution as a claim reads it, with everything its steps need.
struct LoadedExecution {
    execution: ExecutionRecord,
    active: bool,
    deleted: bool,
    event: EventRecord,
    entity: Option<Value>,
    tenant: Option<TenantRecord>,
    concurrency: Option<ConcurrencyKey>,
    occurred_at: i64,
}

/// A step's outcome to commit, as the executor decided it.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub step: ClaimedStep,
    pub finish: StepFinish,
    pub cause: Cause,
    pub endpoint: Option<EndpointReport>,
}

/// An execution status as stored; anything else is a corrupt row.
fn execution_status(text: &str) -> StoreResult<ExecutionStatus> {
    ExecutionStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown execution status `{text}`")))
}

/// A step status as stored; anything else is a corrupt row.
fn step_status(text: &str) -> StoreResult<StepStatus> {
    StepStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown step status `{text}`")))
}

/// The step statuses `keep` selects, as an SQL list of literals (`'queued', 'pending'`).
fn sql_list(keep: fn(StepStatus) -> bool) -> String {
    StepStatus::ALL
        .into_iter()
        .filter(|s| keep(*s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `sql` — `$1` bound to `now`, `{ids}` replaced by placeholders for the ids from `$2` —
/// once per power-of-two chunk of `ids`.
async fn execute_for_ids(tx: &mut Tx, sql: &str, now: i64, ids: &[String]) -> StoreResult<()> {
    for chunk in super::pow2_chunks(ids) {
        let sql = sql.replace("{ids}", &super::in_list(chunk.len(), 2));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for id in chunk {
            query = query.bind(id.clone());
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    Ok(())
}

/// The placeholders of the first column of a [`super::values_list`]: `$start, $start+cols, …`.
fn key_list(rows: usize, cols: usize, start: usize) -> String {
    (0..rows)
        .map(|row| format!("${}", start + row * cols))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which executions of a tenant a resume or a cancel acts on: every condition given must hold
/// (`ExecutionFilter::default()` is every execution the operation applies to). The single
/// resume/cancel set `id`, the bulk endpoints the rest.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub id: Option<Uuid>,
    pub workflow_id: Option<Uuid>,
    pub status: Option<ExecutionStatus>,
    pub pause_reason: Option<&'static str>,
    /// Created at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Created at or before this time (Unix ms).
    pub until: Option<i64>,
    /// Act on at most this many, oldest first (`None`: all).
    pub limit: Option<u32>,
}

impl ExecutionFilter {
    /// One execution.
    pub fn id(id: Uuid) -> Self {
        Self {
            id: Some(id),
            ..Self::default()
        }
    }

    /// Every execution of a workflow.
    pub fn workflow(id: Uuid) -> Self {
        Self {
            workflow_id: Some(id),
            ..Self::default()
        }
    }
}

/// What a resume or a cancel did.
#[derive(Debug, Clone, Default)]
pub struct BulkOutcome {
    /// The executions resumed or cancelled, oldest first.
    pub ids: Vec<Uuid>,
    /// The steps to dispatch: those a resume queued, and those a cancel let start (concurrency).
    pub jobs: Vec<(Job, i64)>,
    /// More executions matched than the filter's limit: call again.
    pub more: bool,
}

/// What claiming a step found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Run it: the lease is held and the attempt open.
    Run(Box<ClaimedStep>),
    /// The execution was cancelled or its workflow is off or gone; the step was parked.
    Stopped,
}

/// How a step ended, as the executor decided it.
#[derive(Debug, Clone)]
pub enum StepFinish {
    Succeeded {
        summary: String,
        output: Value,
        /// Delay before the next step (a `delay` step), in ms.
        wait_ms: Option<i64>,
        set_status: Option<String>,
        /// Tenant records to forget: (kind, key).
        forget: Vec<(RecordKind, String)>,
    },
    /// Try again at `at` (Unix ms).
    Retry { error: String, at: i64 },
    /// The retry schedule is spent or the failure is permanent: the execution pauses.
    Failed { error: String },
    /// The execution was cancelled while the step ran.
    Discarded { reason: String },
}

/// The event that started an execution, as far as chains need it.
#[derive(Debug, Clone)]
pub struct Cause {
    pub event_id: Uuid,
    pub depth: i64,
    pub chain: Vec<String>,
    pub chain_marker: String,
}

/// Outbound endpoint health to record with a step's outcome.
#[derive(Debug, Clone)]
pub enum EndpointReport {
    Succeeded(String),
    Failed(String),
    Gone(String),
}

/// Attempts shown per step in an execution's view: the latest ones.
pub const SHOWN_ATTEMPTS: i64 = 100;

const EXECUTION_COLUMNS: &str = "id, tenant_id, workflow_id, workflow_version, event_id, entity_type, \
     entity_id, status, pause_reason, cancel_reason, step_count, current_step, created_at, updated_at, \
     finished_at";

fn decode_execution(row: Columns<'_>) -> StoreResult<ExecutionRecord> {
    Ok(ExecutionRecord {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        workflow_id: row.uuid("workflow_id")?,
        workflow_version: row.get("workflow_version")?,
        event_id: row.uuid("event_id")?,
        entity_type: row.get("entity_type")?,
        entity_id: row.get("entity_id")?,
        status: execution_status(&row.get::<String>("status")?)?,
        pause_reason: row.get("pause_reason")?,
        cancel_reason: row.get("cancel_reason")?,
        step_count: row.get("step_count")?,
        current_step: row.get("current_step")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        finished_at: row.opt_time("finished_at")?,
    })
}

fn parse_json(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// An execution to start: a matched workflow version for an event, with its steps (the first
/// queued now, the rest pending).
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub workflow_id: Uuid,
    pub version: i64,
    pub event_id: Uuid,
    pub entity_type: String,
    pub entity_id: String,
    /// Step ids and action types, in order.
    pub steps: Vec<(Uuid, String)>,
    /// The event's `occurredAt` (Unix ms): the order concurrency keys are served in.
    pub occurred_at: i64,
    /// The workflow's concurrency key as rendered for this event, and its limit.
    pub concurrency: Option<(String, i64)>,
    /// The workflow's debounce key as rendered for this event, with its timing.
    pub debounce: Option<DebounceKey>,
    /// (trigger code, key) pairs whose events cancel it while queued or waiting (`cancelOn`).
    pub cancel_keys: Vec<(String, String)>,
}

/// A debounced execution's key and timing (CONTRACT §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebounceKey {
    pub key: String,
    pub period_ms: i64,
    pub max_wait_ms: Option<i64>,
}

/// A workflow whose `cancelOn` lists an incoming event's trigger, with that entry's key template.
#[derive(Debug, Clone)]
pub struct CancelCandidate {
    pub workflow_id: Uuid,
    pub key_template: Option<String>,
}

/// An event's `cancelOn` effect on one workflow: its executions holding `key` for `trigger`.
#[derive(Debug, Clone)]
pub struct CancelHit {
    pub tenant_id: Uuid,
    pub workflow_id: Uuid,
    pub trigger: String,
    pub key: String,
    /// Only this execution (one the same batch started), rather than every one holding the key.
    pub execution_id: Option<Uuid>,
}

impl NewExecution {
    pub fn new(
        tenant_id: Uuid,
        workflow_id: Uuid,
        version: i64,
        event_id: Uuid,
        entity_type: &str,
        entity_id: &str,
        step_types: &[String],
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            tenant_id,
            workflow_id,
            version,
            event_id,
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_owned(),
            steps: step_types
                .iter()
                .map(|kind| (Uuid::now_v7(), kind.clone()))
                .collect(),
            occurred_at: 0,
            concurrency: None,
            debounce: None,
            cancel_keys: Vec::new(),
        }
    }

    /// Debounced: its first step waits for a newer matching event with the same key.
    pub fn debounced(
        mut self,
        key: Option<String>,
        period_ms: i64,
        max_wait_ms: Option<i64>,
    ) -> Self {
        self.debounce = key.map(|key| DebounceKey {
            key,
            period_ms,
            max_wait_ms,
        });
        self
    }

    /// Under a concurrency limit: `key` as rendered for the event that occurred at `occurred_at`.
    pub fn limited(mut self, occurred_at: i64, key: Option<String>, limit: u32) -> Self {
        self.occurred_at = occurred_at;
        self.concurrency = key.map(|k| (k, i64::from(limit)));
        self
    }
}

/// Creates executions and their steps with a few multi-row statements, skipping any whose event
/// already started its workflow. Returns the first step of each execution created, with when it
/// is due (now, or at the end of its debounce wait).
pub(crate) async fn insert_executions(
    tx: &mut Tx,
    executions: &[NewExecution],
) -> StoreResult<Vec<(Uuid, i64)>> {
    let now = now_ms();
    let mut created = std::collections::HashSet::new();
    for chunk in super::pow2_chunks(executions) {
        let sql = format!(
            "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, event_id, entity_type, \
             entity_id, status, step_count, current_step, created_at, updated_at, concurrency_key, \
             concurrency_limit, occurred_at, debounce_key) VALUES {} \
             ON CONFLICT (event_id, workflow_id) DO NOTHING RETURNING id",
            super::values_list(chunk.len(), 16, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for execution in chunk {
            query = query
                .bind(execution.id.to_string())
                .bind(execution.tenant_id.to_string())
                .bind(execution.workflow_id.to_string())
                .bind(execution.version)
                .bind(execution.event_id.to_string())
                .bind(execution.entity_type.clone())
                .bind(execution.entity_id.clone())
                .bind("queued")
                .bind(execution.steps.len() as i64)
                .bind(0_i64)
                .bind(now)
                .bind(now)
                .bind(execution.concurrency.as_ref().map(|(key, _)| key.clone()))
                .bind(execution.concurrency.as_ref().map(|(_, limit)| *limit))
                .bind(execution.occurred_at)
                .bind(execution.debounce.as_ref().map(|d| d.key.clone()));
        }
        let rows = query
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        for row in rows {
            created.insert(Columns::of(&row).get::<String>("id")?);
        }
    }
    // The row the gate and the release of each key take turns on (migration 0011).
    let mut slots: Vec<(String, String)> = executions
        .iter()
        .filter(|e| created.contains(&e.id.to_string()))
        .filter_map(|e| {
            e.concurrency
                .as_ref()
                .map(|(key, _)| (e.workflow_id.to_string(), key.clone()))
        })
        .collect();
    slots.sort();
    slots.dedup();
    for chunk in super::pow2_chunks(&slots) {
        let sql = format!(
            "INSERT INTO concurrency_slots (workflow_id, concurrency_key) VALUES {} \
             ON CONFLICT (workflow_id, concurrency_key) DO NOTHING",
            super::values_list(chunk.len(), 2, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (workflow, key) in chunk {
            query = query.bind(workflow.clone()).bind(key.clone());
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    let steps: Vec<(&NewExecution, usize)> = executions
        .iter()
        .filter(|e| created.contains(&e.id.to_string()))
        .flat_map(|e| (0..e.steps.len()).map(move |position| (e, position)))
        .collect();
    for chunk in super::pow2_chunks(&steps) {
        let sql = format!(
            "INSERT INTO steps (id, execution_id, tenant_id, position, action_type, status, next_run_at) \
             VALUES {}",
            super::values_list(chunk.len(), 7, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (execution, position) in chunk {
            let (step_id, kind) = &execution.steps[*position];
            query = query
                .bind(step_id.to_string())
                .bind(execution.id.to_string())
                .bind(execution.tenant_id.to_string())
                .bind(*position as i64)
                .bind(kind.clone())
                .bind(if *position == 0 { "queued" } else { "pending" })
                .bind(match &execution.debounce {
                    Some(d) if *position == 0 => now + d.period_ms,
                    _ => now,
                });
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    let keys: Vec<(&NewExecution, &(String, String))> = executions
        .iter()
        .filter(|e| created.contains(&e.id.to_string()))
        .flat_map(|e| e.cancel_keys.iter().map(move |k| (e, k)))
        .collect();
    for chunk in super::pow2_chunks(&keys) {
        let sql = format!(
            "INSERT INTO execution_keys (execution_id, tenant_id, workflow_id, trigger_code, cancel_key) \
             VALUES {} ON CONFLICT (execution_id, trigger_code) DO NOTHING",
            super::values_list(chunk.len(), 5, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (execution, (trigger, key)) in chunk {
            query = query
                .bind(execution.id.to_string())
                .bind(execution.tenant_id.to_string())
                .bind(execution.workflow_id.to_string())
                .bind(trigger.clone())
                .bind(key.clone());
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    // Debounce, in the batch's order: each new execution replaces the pending ones of its key.
    let mut due: HashMap<Uuid, i64> = HashMap::new();
    let mut replaced = std::collections::HashSet::new();
    for execution in executions
        .iter()
        .filter(|e| created.contains(&e.id.to_string()))
    {
        let Some(debounce) = &execution.debounce else {
            continue;
        };
        let (cancelled, run_at) = debounce_replace(tx, execution, debounce, now).await?;
        replaced.extend(cancelled);
        if let Some((step, _)) = execution.steps.first() {
            due.insert(*step, run_at);
        }
    }
    Ok(executions
        .iter()
        .filter(|e| created.contains(&e.id.to_string()) && !replaced.contains(&e.id))
        .filter_map(|e| {
            e.steps
                .first()
                .map(|(id, _)| (*id, due.get(id).copied().unwrap_or(now)))
        })
        .collect())
}

/// A new debounced execution replaces the pending executions of its workflow and key (queued,
/// their first step not started): they are cancelled and reported on their events as
/// `debounced`, and the new one inherits the burst's first time. Returns the executions
/// cancelled and when the new one's first step is due: `period` from now, or `maxWait` after the
/// burst's first event when that is sooner.
async fn debounce_replace(
    tx: &mut Tx,
    execution: &NewExecution,
    debounce: &DebounceKey,
    now: i64,
) -> StoreResult<(Vec<Uuid>, i64)> {
    let slot = ConcurrencyKey {
        workflow_id: execution.workflow_id.to_string(),
        key: format!("debounce:{}", debounce.key),
        limit: 1,
    };
    sqlx::query(
        "INSERT INTO concurrency_slots (workflow_id, concurrency_key) VALUES ($1, $2) \
         ON CONFLICT (workflow_id, concurrency_key) DO NOTHING",
    )
    .bind(slot.workflow_id.clone())
    .bind(slot.key.clone())
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    lock_slot(tx, &slot).await?;
    let rows = sqlx::query(
        "SELECT e.id, e.event_id, e.debounce_first_at FROM executions e \
         WHERE e.workflow_id = $1 AND e.debounce_key = $2 AND e.status = 'queued' AND e.id <> $3 \
         AND EXISTS (SELECT 1 FROM steps s WHERE s.execution_id = e.id AND s.position = 0 \
           AND s.status = 'queued')",
    )
    .bind(slot.workflow_id.clone())
    .bind(debounce.key.clone())
    .bind(execution.id.to_string())
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    let mut first_at = now;
    let mut cancelled = Vec::new();
    for row in &rows {
        let row = Columns::of(row);
        let id: String = row.get("id")?;
        // Only if it is still pending as this transaction changes it (a worker may have just
        // started it: then it runs, and the new execution waits its own period).
        let done = sqlx::query(
            "UPDATE steps SET status = 'cancelled' WHERE execution_id = $1 AND position = 0 \
             AND status = 'queued'",
        )
        .bind(id.clone())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if done.rows_affected() == 0 {
            continue;
        }
        sqlx::query(
            "UPDATE steps SET status = 'cancelled' WHERE execution_id = $1 AND status = 'pending'",
        )
        .bind(id.clone())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        sqlx::query(
            "UPDATE executions SET status = 'cancelled', cancel_reason = 'debounced', \
             updated_at = $1, finished_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id.clone())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if let Some(at) = row.get::<Option<i64>>("debounce_first_at")? {
            first_at = first_at.min(at);
        }
        let event_id: String = row.get("event_id")?;
        report_debounced(tx, &event_id, execution).await?;
        cancelled
            .push(Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("{id}: {e}")))?);
    }
    let run_at = domain::debounce::due_at(now, first_at, debounce.period_ms, debounce.max_wait_ms);
    sqlx::query("UPDATE executions SET debounce_first_at = $1 WHERE id = $2")
        .bind(first_at)
        .bind(execution.id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    if let Some((step, _)) = execution.steps.first()
        && run_at != now + debounce.period_ms
    {
        sqlx::query("UPDATE steps SET next_run_at = $1 WHERE id = $2")
            .bind(run_at)
            .bind(step.to_string())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    Ok((cancelled, run_at))
}

/// Moves the workflow's entry of an event's outcome from `matched` to `refused`, with reason
/// `debounced` and the event that replaced it.
async fn report_debounced(tx: &mut Tx, event_id: &str, by: &NewExecution) -> StoreResult<()> {
    let row = sqlx::query("SELECT outcome FROM events WHERE id = $1")
        .bind(event_id.to_owned())
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    let Some(row) = row else {
        return Ok(());
    };
    let mut outcome = Columns::of(&row)
        .get::<Option<String>>("outcome")?
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .unwrap_or_else(|| json!({"matched": [], "notMatched": [], "refused": []}));
    domain::debounce::report(
        &mut outcome,
        &by.workflow_id.to_string(),
        &by.event_id.to_string(),
    );
    sqlx::query("UPDATE events SET outcome = $1 WHERE id = $2")
        .bind(outcome.to_string())
        .bind(event_id.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// How `cancelOn` cancels executions (the API's cancels go through `Store::cancel_executions`):
/// those of `tenant_id` that `filter` selects (an SQL condition whose parameters start at `$4`,
/// bound in order from `binds`) and that are in a state `allowed` by the domain, get `reason`;
/// their idle steps are cancelled, and a running step finishes on its own and finds the execution
/// cancelled. Returns the executions cancelled.
async fn cancel_where(
    tx: &mut Tx,
    tenant_id: Uuid,
    filter: &str,
    binds: &[String],
    allowed: fn(ExecutionStatus) -> bool,
    reason: &str,
) -> StoreResult<Vec<Uuid>> {
    let now = now_ms();
    let states = ExecutionStatus::ALL
        .into_iter()
        .filter(|s| allowed(*s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE executions SET status = 'cancelled', pause_reason = NULL, cancel_reason = $3, \
         updated_at = $1, finished_at = $1 \
         WHERE tenant_id = $2 AND status IN ({states}) AND {filter} RETURNING id"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(tenant_id.to_string())
        .bind(reason.to_owned());
    for value in binds {
        query = query.bind(value.clone());
    }
    let rows = query
        .fetch_all(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| Columns::of(r).uuid("id"))
        .collect::<StoreResult<_>>()?;
    for id in &ids {
        // A running step finishes on its own and finds the execution cancelled.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE steps SET status = 'cancelled' WHERE execution_id = $1 AND status IN ({})",
            sql_list(StepStatus::is_idle)
        )))
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    }
    Ok(ids)
}

/// Applies events' `cancelOn` hits in the transaction that stores (or matches) the events:
/// each hit cancels its workflow's queued and waiting executions holding the hit's key, found
/// through `execution_keys_lookup`.
pub(crate) async fn cancel_on_hits(tx: &mut Tx, hits: &[CancelHit]) -> StoreResult<Vec<Uuid>> {
    let mut cancelled = Vec::new();
    let mut keys = Vec::new();
    for hit in hits {
        let (filter, binds) = match hit.execution_id {
            Some(id) => (
                "workflow_id = $4 AND id = $5",
                vec![hit.workflow_id.to_string(), id.to_string()],
            ),
            None => (
                "workflow_id = $4 AND id IN (SELECT execution_id FROM execution_keys \
                 WHERE tenant_id = $2 AND trigger_code = $5 AND cancel_key = $6 AND workflow_id = $4)",
                vec![
                    hit.workflow_id.to_string(),
                    hit.trigger.clone(),
                    hit.key.clone(),
                ],
            ),
        };
        let ids = cancel_where(
            tx,
            hit.tenant_id,
            filter,
            &binds,
            crate::domain::cancellable_on_event,
            &crate::domain::cancel_on_reason(&hit.trigger),
        )
        .await?;
        let ids_text: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        keys.extend(concurrency_keys_of(tx, hit.tenant_id, &ids_text).await?);
        cancelled.extend(ids);
    }
    // Executions held behind the cancelled ones by a concurrency key may start now. Their steps
    // are queued in this transaction; the sweeper dispatches them (`--redispatch-after`), as it
    // does any queued step the queue does not hold.
    keys.sort();
    keys.dedup();
    release_keys(tx, &keys, now_ms()).await?;
    Ok(cancelled)
}

impl Store {
    /// Takes the lease on steps — each a queued step that is due, or a running one whose lease
    /// ran out (its worker died) or that this worker already holds — and, in the same
    /// transaction, decides whether each may run: a cancelled execution or a deleted workflow
    /// cancels it, a workflow toggled off parks it (the execution pauses with
    /// `workflow_disabled`); otherwise its attempt is opened and its execution marked running.
    /// A step someone else has, or that has nothing left to do, is absent from the answer. The
    /// whole batch costs a handful of multi-row statements, and each claim comes back with what
    /// running it needs (event, entity, tenant, disabled endpoints).
    pub async fn claim_steps(
        &self,
        step_ids: &[Uuid],
        worker: &str,
        lease_ms: i64,
    ) -> StoreResult<HashMap<Uuid, Claim>> {
        let now = now_ms();
        let mut tx = self.relaxed_tx().await?;
        struct Taken {
            step_id: Uuid,
            execution_id: String,
            position: i64,
            action_type: String,
            attempt: i64,
            failures: i64,
        }
        let mut taken = Vec::new();
        // The state test is a CASE so no index on `status` can serve it: PostgreSQL would
        // otherwise combine the primary key with a scan of every queued and running entry of
        // `steps_ready` (dead ones included), a cost that grows until the next vacuum.
        for chunk in super::pow2_chunks(step_ids) {
            let sql = format!(
                "UPDATE steps SET status = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
                 WHERE id IN ({}) AND CASE status WHEN 'queued' THEN next_run_at <= $3 \
                   WHEN 'running' THEN (lease_owner = $1 OR lease_until < $3) ELSE FALSE END \
                 RETURNING id, execution_id, position, action_type, attempts, failures",
                super::in_list(chunk.len(), 4)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(worker.to_owned())
                .bind(now + lease_ms)
                .bind(now);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for row in query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
            {
                let row = Columns::of(&row);
                taken.push(Taken {
                    step_id: row.uuid("id")?,
                    execution_id: row.get("execution_id")?,
                    position: row.get("position")?,
                    action_type: row.get("action_type")?,
                    attempt: row.get("attempts")?,
                    failures: row.get("failures")?,
                });
            }
        }
        if taken.is_empty() {
            tx.commit().await.map_err(StoreError::from_sqlx)?;
            return Ok(HashMap::new());
        }
        // A previous holder that died mid-attempt left its attempt open: close it.
        let retaken: Vec<String> = taken
            .iter()
            .filter(|t| t.attempt > 1)
            .map(|t| t.step_id.to_string())
            .collect();
        execute_for_ids(
            &mut tx,
            "UPDATE attempts SET ended_at = $1, outcome = 'abandoned', \
             error = 'the worker running this attempt stopped before it finished' \
             WHERE step_id IN ({ids}) AND ended_at IS NULL",
            now,
            &retaken,
        )
        .await?;

        // Each execution with its workflow's state, event, entity and tenant, in one read.
        let mut execution_ids: Vec<String> = taken.iter().map(|t| t.execution_id.clone()).collect();
        execution_ids.sort();
        execution_ids.dedup();
        let mut loaded: HashMap<String, LoadedExecution> = HashMap::new();
        for chunk in super::pow2_chunks(&execution_ids) {
            let sql = format!(
                // The entity is a correlated subquery, not a join, so PostgreSQL looks it up by
                // its whole key even before its statistics exist (see `Store::entities_data`).
                "SELECT {}, w.is_active AS workflow_active, w.deleted_at AS workflow_deleted_at, {}, \
                 (SELECT en.data FROM entities en WHERE en.tenant_id = e.tenant_id \
                   AND en.entity_type = e.entity_type AND en.entity_id = e.entity_id) AS entity_data, \
                 t.name AS tenant_name, t.notification_email AS tenant_notification_email, \
                 e.concurrency_key AS gate_key, e.concurrency_limit AS gate_limit, \
                 e.occurred_at AS gate_occurred_at \
                 FROM executions e \
                 LEFT JOIN workflows w ON w.id = e.workflow_id \
                 JOIN events ev ON ev.id = e.event_id \
                 LEFT JOIN tenants t ON t.id = e.tenant_id \
                 WHERE e.id IN ({})",
                aliased("e", EXECUTION_COLUMNS),
                aliased("ev", super::events::EVENT_COLUMNS),
                super::in_list(chunk.len(), 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.clone());
            }
            for row in query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
            {
                let execution = decode_execution(Columns::prefixed(&row, "e"))?;
                let event = super::events::decode_event(Columns::prefixed(&row, "ev"))?;
                let row = Columns::of(&row);
                let active = row.get::<Option<i64>>("workflow_active")?.unwrap_or(0) != 0;
                let deleted = row.get::<Option<i64>>("workflow_deleted_at")?.is_some();
                let entity = row
                    .get::<Option<String>>("entity_data")?
                    .and_then(|text| serde_json::from_str(&text).ok());
                let tenant = row
                    .get::<Option<String>>("tenant_name")?
                    .map(|name| -> StoreResult<TenantRecord> {
                        Ok(TenantRecord {
                            id: execution.tenant_id,
                            name,
                            notification_email: row.get("tenant_notification_email")?,
                        })
                    })
                    .transpose()?;
                let concurrency = row
                    .get::<Option<String>>("gate_key")?
                    .map(|key| -> StoreResult<ConcurrencyKey> {
                        Ok(ConcurrencyKey {
                            workflow_id: execution.workflow_id.to_string(),
                            key,
                            limit: row.get::<Option<i64>>("gate_limit")?.unwrap_or(1),
                        })
                    })
                    .transpose()?;
                let occurred_at = row.get::<Option<i64>>("gate_occurred_at")?.unwrap_or(0);
                loaded.insert(
                    execution.id.to_string(),
                    LoadedExecution {
                        execution,
                        active,
                        deleted,
                        event,
                        entity,
                        tenant,
                        concurrency,
                        occurred_at,
                    },
                );
            }
        }

        // Per-key concurrency: an execution's first step runs only while fewer than its limit of
        // unfinished executions of its key come before it (domain::concurrency). Its slot row is
        // locked first, so a finish releasing the key waits for this decision or sees it.
        let mut gated: Vec<(&ConcurrencyKey, i64, &str)> = taken
            .iter()
            .filter(|t| t.position == 0)
            .filter_map(|t| {
                let found = loaded.get(&t.execution_id)?;
                (found.execution.status == ExecutionStatus::Queued)
                    .then_some(())
                    .and(found.concurrency.as_ref())
                    .map(|key| (key, found.occurred_at, t.execution_id.as_str()))
            })
            .collect();
        gated.sort();
        let mut held = std::collections::HashSet::new();
        for (key, occurred_at, execution_id) in gated {
            lock_slot(&mut tx, key).await?;
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM executions o WHERE o.workflow_id = $1 \
                 AND o.concurrency_key = $2 AND o.status IN ('queued', 'running', 'waiting', 'paused') \
                 AND (o.occurred_at < $3 OR (o.occurred_at = $3 AND o.id < $4))",
            )
            .bind(key.workflow_id.clone())
            .bind(key.key.clone())
            .bind(occurred_at)
            .bind(execution_id.to_owned())
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            let before: i64 = Columns::of(&row).get("n")?;
            if !domain::concurrency::may_start(before, key.limit) {
                held.insert(execution_id.to_owned());
            }
        }
        let held = held;

        let mut claims = HashMap::new();
        let mut attempts = Vec::new();
        let mut start_executions = Vec::new();
        for t in taken {
            let Some(found) = loaded.get(&t.execution_id) else {
                return Err(StoreError::Corrupt(format!(
                    "step {} belongs to a missing execution or event",
                    t.step_id
                )));
            };
            let execution = &found.execution;
            let mut decision = domain::claim(domain::ClaimView {
                execution: execution.status,
                workflow_active: found.active,
                workflow_deleted: found.deleted,
            });
            if t.position == 0
                && held.contains(&t.execution_id)
                && matches!(decision, ClaimDecision::Run { .. })
            {
                // Held behind earlier executions of its key: queued, holding no worker, until a
                // finish releases it.
                decision = ClaimDecision::Park {
                    step: StepStatus::Blocked,
                    execution: None,
                };
            }
            let start_execution = match decision {
                ClaimDecision::Run { start_execution } => start_execution,
                ClaimDecision::Park {
                    step,
                    execution: change,
                } => {
                    sqlx::query(
                        "UPDATE steps SET status = $1, lease_owner = NULL, lease_until = NULL, attempts = attempts - 1 \
                         WHERE id = $2",
                    )
                    .bind(step.as_str())
                    .bind(t.step_id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                    if let Some((status, reason)) = change {
                        sqlx::query(
                            "UPDATE executions SET status = $1, pause_reason = $2, updated_at = $3, \
                             finished_at = CASE WHEN $1 = 'cancelled' THEN $3 ELSE NULL END \
                             WHERE id = $4 AND status NOT IN ('succeeded', 'cancelled')",
                        )
                        .bind(status.as_str())
                        .bind(reason.map(PauseReason::as_str))
                        .bind(now)
                        .bind(t.execution_id.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                    }
                    claims.insert(t.step_id, Claim::Stopped);
                    continue;
                }
            };
            let attempt_id = Uuid::now_v7();
            attempts.push((attempt_id, t.step_id, execution.tenant_id, t.attempt));
            if start_execution {
                start_executions.push(t.execution_id.clone());
            }
            claims.insert(
                t.step_id,
                Claim::Run(Box::new(ClaimedStep {
                    step_id: t.step_id,
                    position: t.position,
                    action_type: t.action_type,
                    attempt: t.attempt,
                    failures: t.failures,
                    attempt_id,
                    execution: execution.clone(),
                    event: found.event.clone(),
                    entity: found.entity.clone(),
                    tenant: found.tenant.clone(),
                    disabled_endpoints: Vec::new(),
                    concurrency: found.concurrency.clone(),
                })),
            );
        }
        for chunk in super::pow2_chunks(&attempts) {
            let sql = format!(
                "INSERT INTO attempts (id, step_id, tenant_id, number, worker, started_at) VALUES {}",
                super::values_list(chunk.len(), 6, 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (attempt_id, step_id, tenant_id, number) in chunk {
                query = query
                    .bind(attempt_id.to_string())
                    .bind(step_id.to_string())
                    .bind(tenant_id.to_string())
                    .bind(*number)
                    .bind(worker.to_owned())
                    .bind(now);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        start_executions.sort();
        start_executions.dedup();
        execute_for_ids(
            &mut tx,
            // The state test is a CASE so the planner cannot serve it from `executions_status`:
            // a plan cached while the table was small otherwise scans every queued execution
            // (the whole backlog) for each batch (seen with auto_explain; docs/benchmarks.md).
            "UPDATE executions SET status = 'running', updated_at = $1 \
             WHERE id IN ({ids}) AND CASE status WHEN 'queued' THEN TRUE WHEN 'waiting' THEN TRUE ELSE FALSE END",
            now,
            &start_executions,
        )
        .await?;
        // Endpoints disabled for the tenants of these steps (usually none).
        let mut tenants: Vec<Uuid> = claims
            .values()
            .filter_map(|c| match c {
                Claim::Run(step) => Some(step.execution.tenant_id),
                Claim::Stopped => None,
            })
            .collect();
        tenants.sort();
        tenants.dedup();
        let mut disabled: HashMap<Uuid, Vec<(String, String)>> = HashMap::new();
        for tenant in tenants {
            let rows = sqlx::query(
                "SELECT url, disabled_reason FROM endpoint_health WHERE tenant_id = $1 AND disabled_at IS NOT NULL",
            )
            .bind(tenant.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            for row in rows {
                let row = Columns::of(&row);
                disabled.entry(tenant).or_default().push((
                    row.get("url")?,
                    row.get::<Option<String>>("disabled_reason")?
                        .unwrap_or_default(),
                ));
            }
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        for claim in claims.values_mut() {
            if let Claim::Run(step) = claim
                && let Some(list) = disabled.get(&step.execution.tenant_id)
            {
                step.disabled_endpoints = list.clone();
            }
        }
        Ok(claims)
    }

    /// Extends a held lease; false when the lease was lost (another worker took the step over).
    pub async fn extend_lease(
        &self,
        step_id: Uuid,
        worker: &str,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE steps SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
        )
        .bind(now_ms() + lease_ms)
        .bind(step_id.to_string())
        .bind(worker)
        .execute(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    /// Commits steps' outcomes, their effects and what comes next, in one transaction of a few
    /// multi-row statements for the common case. Returns the jobs to dispatch after the commit.
    /// Nothing is written for a step whose lease was lost meanwhile.
    pub async fn finish_steps(
        &self,
        worker: &str,
        outcomes: &[StepOutcome],
    ) -> StoreResult<Vec<(Job, i64)>> {
        let now = now_ms();
        let mut jobs = Vec::new();
        let mut tx = self.relaxed_tx().await?;

        // The state machine decides on each execution's status as this transaction reads it
        // (a cancel may have landed while the step ran).
        let mut execution_ids: Vec<String> = outcomes
            .iter()
            .map(|o| o.step.execution.id.to_string())
            .collect();
        execution_ids.sort();
        execution_ids.dedup();
        let mut statuses: HashMap<String, ExecutionStatus> = HashMap::new();
        for chunk in super::pow2_chunks(&execution_ids) {
            // One primary-key lookup per id (a correlated subquery), not `id IN (…)`: PostgreSQL,
            // before its statistics exist, answers an `IN` list over a growing table by a scan
            // (1.6 ms a batch in the bench's profile; docs/benchmarks.md).
            let sql = format!(
                "WITH v (k) AS (VALUES {}) SELECT v.k AS id, \
                 (SELECT e.status FROM executions e WHERE e.id = v.k) AS status FROM v",
                super::values_list(chunk.len(), 1, 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.clone());
            }
            for row in query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
            {
                let row = Columns::of(&row);
                if let Some(status) = row.get::<Option<String>>("status")? {
                    statuses.insert(row.get("id")?, execution_status(&status)?);
                }
            }
        }
        let transitions: Vec<domain::Transition> = outcomes
            .iter()
            .map(|o| {
                let execution = &o.step.execution;
                let current = match statuses.get(&execution.id.to_string()) {
                    Some(status) => *status,
                    None => execution.status,
                };
                let end = match &o.finish {
                    StepFinish::Succeeded { wait_ms, .. } => {
                        AttemptEnd::Succeeded { wait_ms: *wait_ms }
                    }
                    StepFinish::Retry { at, .. } => AttemptEnd::Retry { at: *at },
                    StepFinish::Failed { .. } => AttemptEnd::Failed,
                    StepFinish::Discarded { .. } => AttemptEnd::Discarded,
                };
                let state = StepState {
                    position: o.step.position,
                    step_count: execution.step_count,
                    execution: current,
                };
                Ok(domain::finish(state, end, now))
            })
            .collect::<StoreResult<_>>()?;

        struct Row {
            step_id: String,
            error: Option<String>,
            output: Option<String>,
        }
        let rows: Vec<Row> = outcomes
            .iter()
            .map(|o| {
                let (error, output) = match &o.finish {
                    StepFinish::Succeeded {
                        summary, output, ..
                    } => {
                        let mut output = output.clone();
                        if let Value::Object(map) = &mut output {
                            map.entry("summary")
                                .or_insert_with(|| Value::String(summary.clone()));
                        } else if output.is_null() {
                            output = json!({ "summary": summary });
                        }
                        (None, Some(output.to_string()))
                    }
                    StepFinish::Retry { error, .. } | StepFinish::Failed { error } => {
                        (Some(error.clone()), None)
                    }
                    StepFinish::Discarded { reason } => (Some(reason.clone()), None),
                };
                Row {
                    step_id: o.step.step_id.to_string(),
                    error,
                    output,
                }
            })
            .collect();

        // The second case of the lease check: our lease ran out while the database was
        // unreachable (the outcome could not be recorded until it came back) and a sweeper
        // re-queued the step, but nobody has claimed it again (a claim bumps `attempts`). The
        // attempt that ran is still the last one, so its outcome is recorded rather than running
        // the step — and delivering its webhook — a second time. Found by the chaos run
        // (docs/chaos.md).
        let mut recorded = std::collections::HashSet::new();
        let indexed: Vec<(usize, &Row)> = rows.iter().enumerate().collect();
        for chunk in super::pow2_chunks(&indexed) {
            let sql = format!(
                "WITH v (sid, s_status, s_next, s_failed, s_output, s_error, s_attempts) AS (VALUES {}) \
                 UPDATE steps SET status = v.s_status, lease_owner = NULL, lease_until = NULL, \
                 next_run_at = v.s_next, failures = steps.failures + v.s_failed, \
                 output = COALESCE(v.s_output, steps.output), last_error = v.s_error \
                 FROM v WHERE steps.id = v.sid AND steps.id IN ({}) \
                 AND CASE steps.status WHEN 'running' THEN steps.lease_owner = $1 \
                   WHEN 'queued' THEN (steps.lease_owner IS NULL AND steps.attempts = v.s_attempts) \
                   ELSE FALSE END \
                 RETURNING id",
                super::values_list(chunk.len(), 7, 2),
                // The ids again as an `IN` list: a join alone may be planned as a scan of every
                // step (PostgreSQL before its statistics exist); this keeps it to the primary key.
                key_list(chunk.len(), 7, 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(worker.to_owned());
            for (index, row) in chunk {
                let t = &transitions[*index];
                query = query
                    .bind(row.step_id.clone())
                    .bind(t.step.as_str())
                    .bind(t.rerun_at.unwrap_or(now))
                    .bind(i64::from(t.counts_as_failure))
                    .bind(row.output.clone())
                    .bind(row.error.clone())
                    .bind(outcomes[*index].step.attempt);
            }
            for found in query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
            {
                recorded.insert(Columns::of(&found).get::<String>("id")?);
            }
        }
        let kept: Vec<usize> = (0..outcomes.len())
            .filter(|&i| {
                let kept = recorded.contains(&rows[i].step_id);
                if !kept {
                    // Another worker took the step over after our lease ran out; its outcome
                    // counts.
                    tracing::warn!(step = %rows[i].step_id, "lease lost before the outcome was recorded");
                }
                kept
            })
            .collect();

        for chunk in super::pow2_chunks(&kept) {
            let sql = format!(
                "WITH v (aid, a_outcome, a_error, a_output) AS (VALUES {}) \
                 UPDATE attempts SET ended_at = $1, outcome = v.a_outcome, error = v.a_error, \
                 output = v.a_output FROM v WHERE attempts.id = v.aid AND attempts.id IN ({})",
                super::values_list(chunk.len(), 4, 2),
                key_list(chunk.len(), 4, 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
            for &i in chunk {
                query = query
                    .bind(outcomes[i].step.attempt_id.to_string())
                    .bind(transitions[i].attempt.as_str())
                    .bind(rows[i].error.clone())
                    .bind(rows[i].output.clone());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }

        // Endpoint health: a success resets an endpoint's count once per batch.
        let mut reset = std::collections::HashSet::new();
        for &i in &kept {
            let o = &outcomes[i];
            let tenant = o.step.execution.tenant_id.to_string();
            match &o.endpoint {
                Some(EndpointReport::Succeeded(url))
                    if !reset.insert((tenant.clone(), url.clone())) => {}
                Some(report) => record_endpoint(&mut tx, &tenant, report, now).await?,
                None => {}
            }
        }

        // What each transition changes; executions that finished: one statement for all.
        let mut finished = Vec::new();
        for &i in &kept {
            let o = &outcomes[i];
            let t = &transitions[i];
            let step = &o.step;
            let execution = &step.execution;
            let tenant = execution.tenant_id.to_string();
            if t.apply_effects
                && let StepFinish::Succeeded {
                    set_status, forget, ..
                } = &o.finish
            {
                for (kind, key) in forget {
                    forget_tenant_record(&mut tx, &tenant, *kind, key).await?;
                }
                if let Some(status) = set_status {
                    for event_id in emit_status_change(&mut tx, step, &o.cause, status).await? {
                        jobs.push((
                            Job::ProcessEvent {
                                tenant_id: execution.tenant_id,
                                event_id,
                            },
                            now,
                        ));
                    }
                }
            }
            if let Some(at) = t.rerun_at {
                jobs.push((
                    Job::RunStep {
                        tenant_id: execution.tenant_id,
                        step_id: step.step_id,
                    },
                    at,
                ));
            }
            if let Some(next) = t.next {
                let row = sqlx::query(
                    "UPDATE steps SET status = 'queued', next_run_at = $1 \
                     WHERE execution_id = $2 AND position = $3 RETURNING id",
                )
                .bind(next.run_at)
                .bind(execution.id.to_string())
                .bind(next.position)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                let next_step = Columns::of(&row).uuid("id")?;
                let status = t
                    .execution
                    .map(|(status, _)| status)
                    .or_else(|| statuses.get(&execution.id.to_string()).copied())
                    .unwrap_or(ExecutionStatus::Running);
                sqlx::query(
                    "UPDATE executions SET current_step = $1, status = $2, updated_at = $3 \
                     WHERE id = $4 AND status <> 'cancelled'",
                )
                .bind(next.position)
                .bind(status.as_str())
                .bind(now)
                .bind(execution.id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                jobs.push((
                    Job::RunStep {
                        tenant_id: execution.tenant_id,
                        step_id: next_step,
                    },
                    next.run_at,
                ));
                continue;
            }
            match t.execution {
                Some((ExecutionStatus::Succeeded, _)) => finished.push(execution.id.to_string()),
                Some((status, reason)) => {
                    sqlx::query(
                        "UPDATE executions SET status = $1, pause_reason = $2, updated_at = $3 \
                         WHERE id = $4 AND status <> 'cancelled'",
                    )
                    .bind(status.as_str())
                    .bind(reason.map(PauseReason::as_str))
                    .bind(now)
                    .bind(execution.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                }
                None => {}
            }
        }
        execute_for_ids(
            &mut tx,
            "UPDATE executions SET status = 'succeeded', pause_reason = NULL, updated_at = $1, \
             finished_at = $1 WHERE id IN ({ids}) AND status <> 'cancelled'",
            now,
            &finished,
        )
        .await?;
        // Executions that finished free their place in their concurrency key.
        let mut freed: Vec<ConcurrencyKey> = kept
            .iter()
            .filter(|&&i| transitions[i].next.is_none())
            .filter(|&&i| {
                matches!(
                    transitions[i].execution,
                    Some((ExecutionStatus::Succeeded | ExecutionStatus::Cancelled, _))
                )
            })
            .filter_map(|&i| outcomes[i].step.concurrency.clone())
            .collect();
        freed.sort();
        freed.dedup();
        jobs.extend(release_keys(&mut tx, &freed, now).await?);
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(jobs)
    }

    /// Re-enables endpoints (a workflow using them was saved).
    pub async fn enable_endpoints(&self, tenant_id: Uuid, urls: &[String]) -> StoreResult<()> {
        for url in urls {
            sqlx::query("DELETE FROM endpoint_health WHERE tenant_id = $1 AND url = $2")
                .bind(tenant_id.to_string())
                .bind(url)
                .execute(self.writer())
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        Ok(())
    }

    /// Steps whose lease ran out (their worker died): back to the queue. Returns them to dispatch.
    /// (tenant id, step id) of each step re-queued.
    pub async fn requeue_expired_leases(&self, limit: u32) -> StoreResult<Vec<(Uuid, Uuid)>> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE steps SET status = 'queued', lease_owner = NULL, lease_until = NULL, next_run_at = $1 \
             WHERE id IN (SELECT id FROM steps WHERE status = 'running' AND lease_until < $1 LIMIT $2) \
             RETURNING tenant_id, id",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(tenant_and_id).collect()
    }

    /// Queued steps that are due, at most `limit`, as (tenant id, step id), served round-robin
    /// across tenants (CONTRACT §7 "Fair queuing"): each tenant's oldest due step first, then each
    /// one's second, and so on; the SQLite dispatcher's queue.
    ///
    /// The tenants with queued steps are found by index seeks (one per tenant, on
    /// `steps_queued_by_tenant`) rather than by scanning the queued steps, and each tenant's due
    /// steps are read oldest first from the same index, at most `limit` each: a fetch costs
    /// O(tenants × (log n + limit)), whatever one tenant has waiting.
    pub async fn due_steps(&self, due_before: i64, limit: u32) -> StoreResult<Vec<(Uuid, Uuid)>> {
        let rows = sqlx::query(
            "WITH RECURSIVE waiting(tenant_id) AS ( \
               SELECT MIN(tenant_id) FROM steps WHERE status = 'queued' \
               UNION ALL \
               SELECT (SELECT MIN(s.tenant_id) FROM steps s \
                       WHERE s.status = 'queued' AND s.tenant_id > waiting.tenant_id) \
               FROM waiting WHERE waiting.tenant_id IS NOT NULL) \
             SELECT tenant_id, id FROM ( \
               SELECT s.tenant_id, s.id, s.next_run_at, \
                      ROW_NUMBER() OVER (PARTITION BY s.tenant_id ORDER BY s.next_run_at, s.id) AS turn \
               FROM waiting w JOIN steps s ON s.id IN ( \
                 SELECT d.id FROM steps d WHERE d.status = 'queued' AND d.tenant_id = w.tenant_id \
                 AND d.next_run_at <= $1 ORDER BY d.next_run_at LIMIT $2)) AS due \
             ORDER BY turn, next_run_at LIMIT $2",
        )
        .bind(due_before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(tenant_and_id).collect()
    }

    /// Due steps that have waited longer than `stale_ms` and were not re-dispatched in that time:
    /// the queue may have lost them (a Redis restart). Marks them re-dispatched now.
    /// (tenant id, step id, due time) of each.
    pub async fn stale_queued_steps(
        &self,
        stale_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, Uuid, i64)>> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE steps SET dispatched_at = $1 WHERE id IN (SELECT id FROM steps \
             WHERE status = 'queued' AND next_run_at <= $2 \
             AND (dispatched_at IS NULL OR dispatched_at <= $2) LIMIT $3) RETURNING tenant_id, id, next_run_at",
        )
        .bind(now)
        .bind(now - stale_ms)
        .bind(i64::from(limit))
        .fetch_all(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                let r = Columns::of(r);
                Ok((r.uuid("tenant_id")?, r.uuid("id")?, r.get("next_run_at")?))
            })
            .collect()
    }

    /// Steps this worker holds, as (tenant id, step id): handed back at shutdown so another worker
    /// runs them at once.
    pub async fn release_leases(&self, worker: &str) -> StoreResult<Vec<(Uuid, Uuid)>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "UPDATE steps SET status = 'queued', lease_owner = NULL, lease_until = NULL, next_run_at = $1 \
             WHERE lease_owner = $2 AND status = 'running' RETURNING tenant_id, id",
        )
        .bind(now)
        .bind(worker)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let ids: Vec<(Uuid, Uuid)> = rows.iter().map(tenant_and_id).collect::<StoreResult<_>>()?;
        for (_, id) in &ids {
            sqlx::query(
                "UPDATE attempts SET ended_at = $1, outcome = 'abandoned', \
                 error = 'handed back at worker shutdown' WHERE step_id = $2 AND ended_at IS NULL",
            )
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(ids)
    }

    pub async fn execution(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<ExecutionRecord>> {
        let sql =
            format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1 AND tenant_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(tenant_id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(|row| decode_execution(Columns::of(row)))
            .transpose()
    }

    /// [`Store::list_executions`] with every execution's steps, within a size budget (see
    /// [`super::within_budget`]): an execution counts its steps' stored output and error, once
    /// per shown attempt. The flag says whether the budget cut the page short.
    pub async fn list_executions_within(
        &self,
        tenant_id: Uuid,
        workflow_id: Option<Uuid>,
        status: Option<ExecutionStatus>,
        before: Option<Uuid>,
        limit: u32,
        max_chars: i64,
    ) -> StoreResult<(Vec<(ExecutionRecord, Vec<StepRecord>)>, bool)> {
        let mut sql = format!(
            "SELECT e.id AS id, (SELECT CAST(COALESCE(SUM((COALESCE(LENGTH(s.output), 0) \
               + COALESCE(LENGTH(s.last_error), 0) + 256) \
               * (1 + CASE WHEN s.attempts > {SHOWN_ATTEMPTS} THEN {SHOWN_ATTEMPTS} ELSE s.attempts END)), 0) AS BIGINT) \
               FROM steps s WHERE s.execution_id = e.id) AS size \
             FROM executions e WHERE e.tenant_id = $1"
        );
        let mut binds: Vec<String> = vec![tenant_id.to_string()];
        for (column, value) in [
            ("e.workflow_id =", workflow_id.map(|w| w.to_string())),
            ("e.status =", status.map(|s| s.as_str().to_owned())),
            ("e.id <", before.map(|b| b.to_string())),
        ] {
            if let Some(value) = value {
                binds.push(value);
                sql.push_str(&format!(" AND {column} ${}", binds.len()));
            }
        }
        sql.push_str(&format!(" ORDER BY e.id DESC LIMIT ${}", binds.len() + 1));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        let sizes = query
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        let (kept, cut) = super::within_budget(&sizes, max_chars)?;
        if kept.is_empty() {
            return Ok((Vec::new(), false));
        }
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE tenant_id = $1 AND id IN ({}) \
             ORDER BY id DESC",
            super::in_list(kept.len(), 2)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant_id.to_string());
        for id in kept {
            query = query.bind(id);
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let execution = decode_execution(Columns::of(row))?;
            let steps = self.execution_steps(tenant_id, execution.id).await?;
            page.push((execution, steps));
        }
        Ok((page, cut))
    }

    /// Executions of the tenant, newest first, optionally of one workflow and/or status.
    pub async fn list_executions(
        &self,
        tenant_id: Uuid,
        workflow_id: Option<Uuid>,
        status: Option<&str>,
        event_id: Option<Uuid>,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<ExecutionRecord>> {
        let mut sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE tenant_id = $1");
        let mut binds: Vec<String> = vec![tenant_id.to_string()];
        for (column, value) in [
            ("workflow_id =", workflow_id.map(|w| w.to_string())),
            ("status =", status.map(str::to_owned)),
            ("event_id =", event_id.map(|e| e.to_string())),
            ("id <", before.map(|b| b.to_string())),
        ] {
            if let Some(value) = value {
                binds.push(value);
                sql.push_str(&format!(" AND {column} ${}", binds.len()));
            }
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", binds.len() + 1));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|row| decode_execution(Columns::of(row)))
            .collect()
    }

    /// Every step of an execution with its latest [`SHOWN_ATTEMPTS`] attempts (`attempt_count`
    /// says how many there were: a step resumed again and again keeps every attempt, and one
    /// execution's view stays bounded).
    pub async fn execution_steps(
        &self,
        tenant_id: Uuid,
        execution_id: Uuid,
    ) -> StoreResult<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT id, position, action_type, status, attempts, next_run_at, output, last_error \
             FROM steps WHERE execution_id = $1 AND tenant_id = $2 ORDER BY position",
        )
        .bind(execution_id.to_string())
        .bind(tenant_id.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let mut steps = Vec::with_capacity(rows.len());
        for r in &rows {
            let r = Columns::of(r);
            let status = step_status(&r.get::<String>("status")?)?;
            let next_run_at = r.get::<Option<i64>>("next_run_at")?;
            steps.push(StepRecord {
                id: r.uuid("id")?,
                position: r.get("position")?,
                action_type: r.get("action_type")?,
                next_run_at: (status == StepStatus::Queued)
                    .then(|| from_ms(next_run_at.unwrap_or_default())),
                status,
                attempt_count: r.get("attempts")?,
                output: parse_json(r.get("output")?),
                last_error: r.get("last_error")?,
                attempts: Vec::new(),
            });
        }
        let attempts = sqlx::query(
            "SELECT a.step_id, a.number, a.worker, a.started_at, a.ended_at, a.outcome, a.error, a.output \
             FROM attempts a JOIN steps s ON s.id = a.step_id \
             WHERE s.execution_id = $1 AND a.tenant_id = $2 AND a.number > s.attempts - $3 \
             ORDER BY a.started_at, a.number",
        )
        .bind(execution_id.to_string())
        .bind(tenant_id.to_string())
        .bind(SHOWN_ATTEMPTS)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        for r in &attempts {
            let r = Columns::of(r);
            let step_id = r.uuid("step_id")?;
            if let Some(step) = steps.iter_mut().find(|s| s.id == step_id) {
                step.attempts.push(AttemptRecord {
                    number: r.get("number")?,
                    worker: r.get("worker")?,
                    started_at: r.time("started_at")?,
                    ended_at: r.opt_time("ended_at")?,
                    outcome: r.get("outcome")?,
                    error: r.get("error")?,
                    output: parse_json(r.get("output")?),
                });
            }
        }
        Ok(steps)
    }

    /// The executions `filter` matches among those whose status `allowed` accepts (the state
    /// machine's question: resumable, cancellable), oldest first, at most `filter.limit`; and
    /// whether more matched than that.
    async fn matching_executions(
        tx: &mut Tx,
        tenant_id: Uuid,
        filter: &ExecutionFilter,
        allowed: fn(ExecutionStatus) -> bool,
    ) -> StoreResult<(Vec<String>, bool)> {
        let statuses = ExecutionStatus::ALL
            .into_iter()
            .filter(|s| allowed(*s))
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!(
            "SELECT id, status FROM executions WHERE tenant_id = $1 AND status IN ({statuses})"
        );
        let mut binds: Vec<String> = vec![tenant_id.to_string()];
        for (column, value) in [
            ("id =", filter.id.map(|v| v.to_string())),
            ("workflow_id =", filter.workflow_id.map(|v| v.to_string())),
            ("status =", filter.status.map(|s| s.as_str().to_owned())),
            ("pause_reason =", filter.pause_reason.map(str::to_owned)),
        ] {
            if let Some(value) = value {
                binds.push(value);
                sql.push_str(&format!(" AND {column} ${}", binds.len()));
            }
        }
        let mut times = Vec::new();
        for (column, value) in [
            ("created_at >=", filter.since),
            ("created_at <=", filter.until),
        ] {
            if let Some(value) = value {
                times.push(value);
                sql.push_str(&format!(" AND {column} ${}", binds.len() + times.len()));
            }
        }
        sql.push_str(" ORDER BY created_at, id");
        if filter.limit.is_some() {
            sql.push_str(&format!(" LIMIT ${}", binds.len() + times.len() + 1));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        for value in times {
            query = query.bind(value);
        }
        if let Some(limit) = filter.limit {
            query = query.bind(i64::from(limit) + 1);
        }
        let rows = query
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        let mut ids = Vec::with_capacity(rows.len());
        for r in &rows {
            let r = Columns::of(r);
            if allowed(execution_status(&r.get::<String>("status")?)?) {
                ids.push(r.get::<String>("id")?);
            }
        }
        let more = filter.limit.is_some_and(|limit| ids.len() > limit as usize);
        if let Some(limit) = filter.limit {
            ids.truncate(limit as usize);
        }
        Ok((ids, more))
    }

    /// Resumes the paused executions `filter` matches (one by id, every one of a workflow, those
    /// paused for a reason, or a bulk selection), re-running the step each stopped at. Returns the
    /// resumed executions, the steps to dispatch, and whether more matched than `filter.limit`.
    pub async fn resume_executions(
        &self,
        tenant_id: Uuid,
        filter: &ExecutionFilter,
    ) -> StoreResult<BulkOutcome> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let resumable = |s: ExecutionStatus| domain::resume(s, 0).is_some();
        let (ids, more) = Self::matching_executions(&mut tx, tenant_id, filter, resumable).await?;
        let mut outcome = BulkOutcome {
            more,
            ..BulkOutcome::default()
        };
        let idle_steps = sql_list(StepStatus::is_idle);
        for chunk in super::pow2_chunks(&ids) {
            let sql = format!(
                "UPDATE executions SET status = 'queued', pause_reason = NULL, updated_at = $1 \
                 WHERE tenant_id = $2 AND status = 'paused' AND id IN ({}) RETURNING id, status, current_step",
                super::in_list(chunk.len(), 3)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(tenant_id.to_string());
            for id in chunk {
                query = query.bind(id.clone());
            }
            let rows = query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            for r in &rows {
                let r = Columns::of(r);
                let id: String = r.get("id")?;
                outcome.ids.push(parse_uuid(&id)?);
                // The row as it was: paused (the update's guard), at its current step.
                let Some(position) =
                    domain::resume(ExecutionStatus::Paused, r.get("current_step")?)
                else {
                    continue;
                };
                let step = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE steps SET status = 'queued', failures = 0, next_run_at = $1, lease_owner = NULL, \
                     lease_until = NULL WHERE execution_id = $2 AND tenant_id = $3 AND position = $4 \
                     AND status IN ({idle_steps}) RETURNING id"
                )))
                .bind(now)
                .bind(&id)
                .bind(tenant_id.to_string())
                .bind(position)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                if let Some(step) = step {
                    outcome.jobs.push((
                        Job::RunStep {
                            tenant_id,
                            step_id: Columns::of(&step).uuid("id")?,
                        },
                        now,
                    ));
                }
            }
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(outcome)
    }

    /// Cancels the unfinished executions `filter` matches (one by id, all of a workflow, or a bulk
    /// selection) with `reason` as their `cancelReason` (`manual`, `workflow_deleted`). Returns
    /// those cancelled, whether more matched than `filter.limit`, and the executions their
    /// concurrency keys may start now.
    pub async fn cancel_executions(
        &self,
        tenant_id: Uuid,
        filter: &ExecutionFilter,
        reason: &str,
    ) -> StoreResult<BulkOutcome> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let (ids, more) =
            Self::matching_executions(&mut tx, tenant_id, filter, domain::cancellable).await?;
        let mut outcome = BulkOutcome {
            more,
            ..BulkOutcome::default()
        };
        // The concurrency keys involved are locked before anything changes, in the order every
        // release takes them, so a cancel and a finish never wait for each other in a circle.
        let keys = concurrency_keys_of(&mut tx, tenant_id, &ids).await?;
        for key in &keys {
            lock_slot(&mut tx, key).await?;
        }
        let unfinished = ExecutionStatus::ALL
            .into_iter()
            .filter(|s| domain::cancellable(*s))
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let idle_steps = sql_list(StepStatus::is_idle);
        for chunk in super::pow2_chunks(&ids) {
            let sql = format!(
                "UPDATE executions SET status = 'cancelled', pause_reason = NULL, cancel_reason = $3, \
                 updated_at = $1, finished_at = $1 \
                 WHERE tenant_id = $2 AND status IN ({unfinished}) AND id IN ({}) RETURNING id",
                super::in_list(chunk.len(), 4)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(tenant_id.to_string())
                .bind(reason.to_owned());
            for id in chunk {
                query = query.bind(id.clone());
            }
            let rows = query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            let cancelled: Vec<String> = rows
                .iter()
                .map(|r| Columns::of(r).get::<String>("id"))
                .collect::<StoreResult<_>>()?;
            if cancelled.is_empty() {
                continue;
            }
            // A running step finishes on its own and finds the execution cancelled.
            let sql = format!(
                "UPDATE steps SET status = 'cancelled' WHERE tenant_id = $1 AND status IN ({idle_steps}) \
                 AND execution_id IN ({})",
                super::in_list(cancelled.len(), 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant_id.to_string());
            for id in &cancelled {
                query = query.bind(id.clone());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            for id in &cancelled {
                outcome.ids.push(parse_uuid(id)?);
            }
        }
        let jobs = release_keys(&mut tx, &keys, now).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        outcome.jobs.extend(jobs);
        Ok(outcome)
    }

    /// Saves (or refreshes) a browser's push subscription.
    pub async fn save_push_subscription(
        &self,
        tenant_id: Uuid,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> StoreResult<bool> {
        let existed =
            sqlx::query("SELECT 1 FROM push_subscriptions WHERE tenant_id = $1 AND endpoint = $2")
                .bind(tenant_id.to_string())
                .bind(endpoint)
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?
                .is_some();
        sqlx::query(
            "INSERT INTO push_subscriptions (tenant_id, endpoint, p256dh, auth, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth",
        )
        .bind(tenant_id.to_string())
        .bind(endpoint)
        .bind(p256dh)
        .bind(auth)
        .bind(now_ms())
        .execute(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(!existed)
    }

    /// The tenant's push subscriptions ([`RecordKind::PushSubscription`]): (endpoint, p256dh,
    /// auth), oldest first.
    pub async fn push_subscriptions(
        &self,
        tenant_id: Uuid,
    ) -> StoreResult<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE tenant_id = $1 ORDER BY created_at")
            .bind(tenant_id.to_string())
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                let r = Columns::of(r);
                Ok((r.get("endpoint")?, r.get("p256dh")?, r.get("auth")?))
            })
            .collect()
    }

    /// (due steps + pending events, steps queued for later), for queue depth on SQLite.
    pub async fn queue_counts(&self) -> StoreResult<(i64, i64)> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM steps WHERE status = 'queued' AND next_run_at <= $1) \
                  + (SELECT COUNT(*) FROM events WHERE state = 'pending') AS ready, \
                    (SELECT COUNT(*) FROM steps WHERE status = 'queued' AND next_run_at > $1) AS delayed",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let row = Columns::of(&row);
        Ok((row.get("ready")?, row.get("delayed")?))
    }

    /// For `/metrics`: executions per non-terminal status (`queued`, `running`, `waiting`, `paused`). Terminal
    /// executions are most of the table and grow without end, so they are not counted: the
    /// `executions_status` index makes this an index-only count of the live ones.
    pub async fn execution_counts(&self) -> StoreResult<Vec<(ExecutionStatus, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM executions \
             WHERE status IN ('queued', 'running', 'waiting', 'paused') GROUP BY status",
        )
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                let r = Columns::of(r);
                Ok((execution_status(&r.get::<String>("status")?)?, r.get("n")?))
            })
            .collect()
    }
}

/// The concurrency keys of executions of `tenant_id` (those that have one), sorted, once each.
async fn concurrency_keys_of(
    tx: &mut Tx,
    tenant_id: Uuid,
    ids: &[String],
) -> StoreResult<Vec<ConcurrencyKey>> {
    let mut keys = Vec::new();
    for chunk in super::pow2_chunks(ids) {
        let sql = format!(
            "SELECT workflow_id, concurrency_key, concurrency_limit FROM executions \
             WHERE tenant_id = $1 AND concurrency_key IS NOT NULL AND id IN ({})",
            super::in_list(chunk.len(), 2)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant_id.to_string());
        for id in chunk {
            query = query.bind(id.clone());
        }
        for row in query
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?
        {
            let row = Columns::of(&row);
            keys.push(ConcurrencyKey {
                workflow_id: row.get("workflow_id")?,
                key: row.get("concurrency_key")?,
                limit: row.get::<Option<i64>>("concurrency_limit")?.unwrap_or(1),
            });
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Takes a concurrency key's turn: the gate of a claim and the release of a finish both update
/// the key's slot row first, so on PostgreSQL they wait for each other (SQLite's writers are
/// serialised anyway).
async fn lock_slot(tx: &mut Tx, key: &ConcurrencyKey) -> StoreResult<()> {
    sqlx::query(
        "UPDATE concurrency_slots SET turns = turns + 1 WHERE workflow_id = $1 AND concurrency_key = $2",
    )
    .bind(key.workflow_id.clone())
    .bind(key.key.clone())
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// Queues the first step of each execution a key may start now (the held ones among its first
/// `limit` unfinished executions, in event order); returns the jobs to dispatch. `keys` sorted.
async fn release_keys(
    tx: &mut Tx,
    keys: &[ConcurrencyKey],
    now: i64,
) -> StoreResult<Vec<(Job, i64)>> {
    let mut jobs = Vec::new();
    for key in keys {
        lock_slot(tx, key).await?;
        // A plain read, then updates by id: a step a concurrent claim is parking is not blocked
        // yet as this transaction sees it, so it is neither chosen nor waited for here.
        let rows = sqlx::query(
            "SELECT e.tenant_id, e.status, (SELECT s.id FROM steps s WHERE s.execution_id = e.id \
               AND s.position = 0 AND s.status = 'blocked') AS held_step \
             FROM executions e WHERE e.workflow_id = $1 AND e.concurrency_key = $2 \
               AND e.status IN ('queued', 'running', 'waiting', 'paused') \
             ORDER BY e.occurred_at, e.id LIMIT $3",
        )
        .bind(key.workflow_id.clone())
        .bind(key.key.clone())
        .bind(key.limit.max(1))
        .fetch_all(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let mut in_order = Vec::with_capacity(rows.len());
        let mut steps = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let row = Columns::of(row);
            let step: Option<String> = row.get("held_step")?;
            let queued =
                execution_status(&row.get::<String>("status")?)? == ExecutionStatus::Queued;
            in_order.push((index, queued && step.is_some()));
            steps.push((row.uuid("tenant_id")?, step));
        }
        for index in domain::concurrency::release(&in_order, key.limit) {
            let (tenant_id, Some(step)) = &steps[index] else {
                continue;
            };
            let done = sqlx::query(
                "UPDATE steps SET status = 'queued', next_run_at = $1 \
                 WHERE id = $2 AND CASE status WHEN 'blocked' THEN TRUE ELSE FALSE END",
            )
            .bind(now)
            .bind(step.clone())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            if done.rows_affected() == 1 {
                jobs.push((
                    Job::RunStep {
                        tenant_id: *tenant_id,
                        step_id: Uuid::parse_str(step)
                            .map_err(|e| StoreError::Corrupt(format!("step id {step}: {e}")))?,
                    },
                    now,
                ));
            }
        }
    }
    Ok(jobs)
}

async fn record_endpoint(
    tx: &mut Tx,
    tenant: &str,
    report: &EndpointReport,
    now: i64,
) -> StoreResult<()> {
    match report {
        EndpointReport::Succeeded(url) => {
            sqlx::query(
                "UPDATE endpoint_health SET failures = 0 WHERE tenant_id = $1 AND url = $2 AND failures <> 0",
            )
            .bind(tenant)
            .bind(url)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        }
        EndpointReport::Failed(url) => {
            sqlx::query(
                "INSERT INTO endpoint_health (tenant_id, url, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (tenant_id, url) DO UPDATE SET failures = endpoint_health.failures + 1",
            )
            .bind(tenant)
            .bind(url)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            sqlx::query(
                "UPDATE endpoint_health SET disabled_at = $1, disabled_reason = $2 \
                 WHERE tenant_id = $3 AND url = $4 AND failures >= $5 AND disabled_at IS NULL",
            )
            .bind(now)
            .bind(format!(
                "{ENDPOINT_FAILURE_LIMIT} consecutive failed attempts"
            ))
            .bind(tenant)
            .bind(url)
            .bind(ENDPOINT_FAILURE_LIMIT)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        }
        EndpointReport::Gone(url) => {
            sqlx::query(
                "INSERT INTO endpoint_health (tenant_id, url, failures, disabled_at, disabled_reason) \
                 VALUES ($1, $2, 1, $3, 'the endpoint answered 410 Gone') \
                 ON CONFLICT (tenant_id, url) DO UPDATE SET disabled_at = $3, \
                 disabled_reason = 'the endpoint answered 410 Gone'",
            )
            .bind(tenant)
            .bind(url)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        }
    }
    Ok(())
}

/// An effect forgetting one of the tenant's records, mapped to the table that holds that kind.
/// A record already gone is no error: the step may run again after its effects were applied.
async fn forget_tenant_record(
    tx: &mut Tx,
    tenant: &str,
    kind: RecordKind,
    key: &str,
) -> StoreResult<()> {
    let sql = match kind {
        RecordKind::PushSubscription => {
            "DELETE FROM push_subscriptions WHERE tenant_id = $1 AND endpoint = $2"
        }
        // Only the merchant removes an integration; `effects::succeeded` fails a step asking to.
        RecordKind::StoreConnection => {
            return Err(StoreError::Corrupt(
                "a step asked to forget a store connection".to_owned(),
            ));
        }
    };
    sqlx::query(sql)
        .bind(tenant)
        .bind(key)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}

/// A `set_status` effect: sets the entity's status and emits `<entity>_status_changed` plus the
/// trigger the status names, caused by the execution's event. Event keys derive from the step,
/// so a re-run of the step emits nothing twice.
async fn emit_status_change(
    tx: &mut Tx,
    step: &ClaimedStep,
    cause: &Cause,
    status: &str,
) -> StoreResult<Vec<Uuid>> {
    let execution = &step.execution;
    let Ok(entity_type) = execution.entity_type.parse::<EntityType>() else {
        return Ok(Vec::new());
    };
    if crate::domain::schedule::is_no_entity(&execution.entity_id) {
        // A schedule tick's run has no entity: `update_status` fails there before asking, and
        // a custom action that asks anyway changes no entity store row and emits nothing.
        tracing::warn!(step = %step.step_id, "a status change was asked for an execution without an entity; ignored");
        return Ok(Vec::new());
    }
    let old = entity_for_update(
        tx,
        execution.tenant_id,
        &execution.entity_type,
        &execution.entity_id,
    )
    .await?
    .unwrap_or_default();
    let mut data: Map<String, Value> = old.clone();
    data.insert("status".to_owned(), Value::String(status.to_owned()));
    let mut chain = cause.chain.clone();
    chain.push(cause.chain_marker.clone());
    let mut emitted = Vec::new();
    for (i, trigger) in switchyard_triggers::triggers_for_status(entity_type, status)
        .into_iter()
        .enumerate()
    {
        let event = NewEvent {
            tenant_id: execution.tenant_id,
            event_key: Some(format!("step_{}_{}", step.step_id.simple(), trigger.code)),
            entity_type,
            entity_id: execution.entity_id.clone(),
            trigger: trigger.code.to_owned(),
            data: data.clone(),
            previous: Some(old.clone()),
            occurred_at: None,
            causation_id: Some(cause.event_id),
            depth: cause.depth + 1,
            chain: chain.clone(),
            update_entity: i == 0,
            source_modified_at: None,
        };
        let ingested = insert_event(tx, &event).await?;
        if !ingested.duplicate {
            emitted.push(ingested.id);
        }
    }
    Ok(emitted)
}
