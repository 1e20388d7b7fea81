//! The executor: turns events into executions and runs their steps. Every outcome is committed to
//! the database before the job that carried it is acknowledged; the queue is only told what to do
//! next after that commit.

pub mod backend;
pub mod batch;
pub mod cancel_on;
mod effects;
pub mod flow_key;
pub mod ingest;
pub mod matching;
pub mod retry;
pub mod worker;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_actions::{ActionError, ActionRegistry, DynAction, StepContext, TenantView};
use switchyard_schemas::event::EventIn;
use switchyard_triggers::{ConditionEngine, WorkflowConditions};
use uuid::Uuid;

use crate::domain::{EventFacts, EventView};
use crate::queue::{Dispatch, Job};
use crate::secrets::MasterKey;
use crate::store::{
    Cause, Claim, ClaimedStep, EndpointReport, EventRecord, NewEvent, StepFinish, StepOutcome,
    Store, StoreError, StoreResult, WorkflowSpec, now_ms,
};
use batch::Batcher;
use retry::RetryDecision;

/// A causal chain of workflows triggering each other stops at this depth.
pub const MAX_CHAIN_DEPTH: i64 = 8;

/// Claim, outcome and ack batches a worker runs at once (each on its own connection).
pub(crate) const BATCHES_IN_FLIGHT: usize = 2;

/// How long a worker keeps trying to record a step's outcome while the database is unavailable.
const RECORD_OUTCOME_FOR: Duration = Duration::from_secs(30);

/// Timings of leases and the sweeper; settings with documented defaults.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// How long a claimed step is a worker's before another may take it over.
    pub lease: Duration,
    /// Delays between attempts of a failing step.
    pub retry_schedule: Vec<Duration>,
    /// The longest one attempt of a step may run.
    pub step_timeout: Duration,
    /// How often the sweeper looks for expired leases and lost jobs.
    pub sweep_interval: Duration,
    /// A due step still queued this long after its time is dispatched again (the queue may have
    /// lost it).
    pub redispatch_after: Duration,
    /// The matching budget and the causal chain's execution limit.
    pub matching: matching::MatchLimits,
    /// `--max-rendered-bytes` and the other limits of one template render.
    pub template_limits: switchyard_actions::template::TemplateLimits,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            retry_schedule: [5, 300, 1800, 7200, 18000, 36000, 36000]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            step_timeout: Duration::from_secs(120),
            sweep_interval: Duration::from_secs(1),
            redispatch_after: Duration::from_secs(20),
            matching: matching::MatchLimits::default(),
            template_limits: Default::default(),
        }
    }
}

/// A workflow version ready for matching: its spec and its compiled condition.
pub struct PreparedWorkflow {
    pub spec: WorkflowSpec,
    pub conditions: WorkflowConditions,
}

/// Everything that runs jobs.
pub struct Executor {
    pub store: Store,
    pub dispatch: Arc<dyn Dispatch>,
    pub actions: Arc<ActionRegistry>,
    pub conditions: Arc<ConditionEngine>,
    pub master_key: MasterKey,
    pub settings: ExecutorSettings,
    /// Unique per process: lease owner and queue consumer name.
    pub worker_id: String,
    /// Compiled workflow versions and the matching of events.
    pub matcher: Arc<matching::Matcher>,
    /// Group commit of incoming events.
    ingest: ingest::IngestBatcher,
    /// Group commit of step claims.
    claims: Batcher<Uuid, StoreResult<Option<Claim>>>,
    /// Group commit of step outcomes (and the dispatch of what follows them).
    outcomes: Batcher<StepOutcome, StoreResult<()>>,
    /// Steps this process is running now. The queue may hand the same step to this worker twice
    /// at once (a recovered delivery beside the sweeper's re-dispatch, found by the chaos run:
    /// docs/chaos.md), and `claim_step` lets a worker re-claim a step it holds; without this
    /// the second copy would run the action again beside the first.
    running_steps: Mutex<std::collections::HashSet<Uuid>>,
}

/// Removes a step from [`Executor::running_steps`] when its run ends, however it ends.
struct RunningStep<'a> {
    executor: &'a Executor,
    step_id: Uuid,
}

impl Drop for RunningStep<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.executor.running_steps.lock() {
            running.remove(&self.step_id);
        }
    }
}

/// What went wrong running a job; the job is left for the sweeper to retry.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

impl Executor {
    pub fn new(
        store: Store,
        dispatch: Arc<dyn Dispatch>,
        actions: Arc<ActionRegistry>,
        conditions: Arc<ConditionEngine>,
        master_key: MasterKey,
        settings: ExecutorSettings,
    ) -> Self {
        let worker_id = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let matcher = Arc::new(matching::Matcher::new(
            store.clone(),
            conditions.clone(),
            settings.matching,
        ));
        let ingest = ingest::IngestBatcher::start(store.clone(), dispatch.clone(), matcher.clone());
        let claims = claim_batcher(store.clone(), worker_id.clone(), millis(settings.lease));
        let outcomes = outcome_batcher(store.clone(), worker_id.clone(), dispatch.clone());
        Self {
            claims,
            outcomes,
            matcher,
            ingest,
            store,
            dispatch,
            actions,
            conditions,
            master_key,
            settings,
            worker_id,
            running_steps: Mutex::new(std::collections::HashSet::new()),
        }
    }

    fn lease_ms(&self) -> i64 {
        millis(self.settings.lease)
    }

    /// Tells the queue about work committed to the database (see [`dispatch_logged`]).
    pub async fn dispatch(&self, jobs: &[(Job, i64)]) {
        dispatch_logged(self.dispatch.as_ref(), jobs).await;
    }

    /// `POST /api/events`: store, then hand matching to a worker.
    pub async fn ingest(
        &self,
        tenant_id: Uuid,
        event: EventIn,
    ) -> StoreResult<crate::store::Ingested> {
        self.ingest_sourced(tenant_id, event, None).await
    }

    /// A store delivery's event, with the resource's modification time (Unix ms) when the
    /// delivery states one: older than the entity's stored one, it is stored stale and starts
    /// nothing ([`crate::domain::staleness`]).
    pub async fn ingest_sourced(
        &self,
        tenant_id: Uuid,
        event: EventIn,
        source_modified_at: Option<i64>,
    ) -> StoreResult<crate::store::Ingested> {
        let new = NewEvent {
            tenant_id,
            event_key: event.event_id,
            entity_type: event.entity_type,
            entity_id: event.entity_id,
            trigger: event.trigger,
            update_entity: true,
            data: event.data,
            previous: event.previous,
            occurred_at: event.occurred_at.map(|t| t.timestamp_millis()),
            causation_id: None,
            depth: 0,
            chain: Vec::new(),
            source_modified_at,
        };
        let ingested = self.ingest.ingest(new).await?;
        metrics::counter!("switchyard_events_ingested_total", "duplicate" => ingested.duplicate.to_string()).increment(1);
        Ok(ingested)
    }

    /// Runs one delivered job to completion (its outcome committed).
    pub async fn run(&self, job: Job) -> Result<(), JobError> {
        match job {
            // The rows name their tenant; the job's tenant only chose when the job was served.
            Job::ProcessEvent { event_id, .. } => self.process_event(event_id).await,
            Job::RunStep { step_id, .. } => self.run_step(step_id).await,
        }
    }

    /// Matches an event against the tenant's active workflows for its trigger and starts an
    /// execution for each match, recording on the event what matched, what did not and why.
    pub async fn process_event(&self, event_id: Uuid) -> Result<(), JobError> {
        // No lease: matching is cheap and the commit below is a compare-and-set on the event's
        // state, so of two workers handed the same event only one records anything.
        let Some(event) = self.store.pending_event(event_id).await? else {
            return Ok(());
        };
        let started = Instant::now();
        let (candidates, cancel_candidates) = self
            .store
            .match_candidates(event.tenant_id, &event.entity_type, &event.trigger)
            .await?;
        let cancels = if cancel_candidates.is_empty() {
            Vec::new()
        } else {
            cancel_on::hits(&event, &event_view(&event), &cancel_candidates)
        };
        let mut decision = self.matcher.decide(&event, candidates).await?;
        let mut tx = self.store.write_tx().await?;
        // `cancelOn`: in the transaction that records the event's matching, before its own
        // executions exist (an event never cancels what it starts).
        crate::store::cancel_on_hits(&mut tx, &cancels).await?;
        // The chain's count is taken in this transaction (a row lock on PostgreSQL, the write
        // lock on SQLite), so workers matching events of one chain at once never start more
        // than the limit between them.
        let limit = self.matcher.limits.max_chain_executions;
        let room = crate::store::reserve_chain_executions(
            &mut tx,
            event.id,
            decision.executions.len(),
            limit,
        )
        .await?;
        decision.limit_chain(room, limit);
        // The outcome first: a debounce in `insert_executions` may report on it.
        if !crate::store::finish_event(&mut tx, event.id, &decision.outcome()).await? {
            // Another worker processed it first; its executions stand, ours are rolled back.
            return Ok(());
        }
        let first_steps = crate::store::insert_executions(&mut tx, &decision.executions).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        metrics::counter!("switchyard_matches_total").increment(first_steps.len() as u64);
        metrics::histogram!("switchyard_event_match_seconds")
            .record(started.elapsed().as_secs_f64());
        let jobs: Vec<(Job, i64)> = first_steps
            .into_iter()
            .map(|(step_id, at)| {
                let tenant_id = event.tenant_id;
                (Job::RunStep { tenant_id, step_id }, at)
            })
            .collect();
        self.dispatch(&jobs).await;
        Ok(())
    }

    /// Runs one step: claim it, run its action under a lease that is kept alive, commit the
    /// outcome with its effects and the next step, then dispatch what follows.
    pub async fn run_step(&self, step_id: Uuid) -> Result<(), JobError> {
        // Already running in this process: that run records the outcome (see `running_steps`).
        if !self
            .running_steps
            .lock()
            .map(|mut running| running.insert(step_id))
            .unwrap_or(true)
        {
            return Ok(());
        }
        let _running = RunningStep {
            executor: self,
            step_id,
        };
        let claim =
            self.claims.call(step_id).await.unwrap_or_else(|| {
                Err(StoreError::Unavailable("the claim task stopped".to_owned()))
            })?;
        let step = match claim {
            Some(Claim::Run(step)) => step,
            Some(Claim::Stopped) | None => return Ok(()),
        };
        let execution = &step.execution;
        let tenant_id = execution.tenant_id;
        let workflow = self
            .matcher
            .prepared(tenant_id, execution.workflow_id, execution.workflow_version)
            .await?;
        let event = &step.event;
        let cause = Cause {
            event_id: event.id,
            depth: event.depth,
            chain: event.chain.clone(),
            chain_marker: chain_marker(
                execution.workflow_id,
                &execution.entity_type,
                &execution.entity_id,
            ),
        };
        let started = Instant::now();

        let (finish, endpoint) = self.attempt(&step, &workflow, event).await;
        let outcome_label = match &finish {
            StepFinish::Succeeded { .. } => "succeeded",
            StepFinish::Retry { .. } => "retry",
            StepFinish::Failed { .. } => "failed",
            StepFinish::Discarded { .. } => "discarded",
        };
        metrics::counter!("switchyard_step_attempts_total", "action" => step.action_type.clone(), "outcome" => outcome_label).increment(1);
        metrics::histogram!("switchyard_step_duration_seconds", "action" => step.action_type.clone()).record(started.elapsed().as_secs_f64());
        // The action has run (a webhook may have been delivered): a database outage now must not
        // drop its outcome, or the step runs again once its lease expires — a duplicate
        // delivery. So recording it is retried while the database is unavailable (a PostgreSQL
        // restart, found by the chaos run: docs/chaos.md), for a bounded time.
        let give_up = Instant::now() + RECORD_OUTCOME_FOR;
        let mut backoff = Duration::from_millis(100);
        loop {
            let outcome = StepOutcome {
                step: (*step).clone(),
                finish: finish.clone(),
                cause: cause.clone(),
                endpoint: endpoint.clone(),
            };
            let recorded = self.outcomes.call(outcome).await.unwrap_or_else(|| {
                Err(StoreError::Unavailable(
                    "the outcome task stopped".to_owned(),
                ))
            });
            match recorded {
                Err(StoreError::Unavailable(reason)) if Instant::now() < give_up => {
                    tracing::warn!(step = %step.step_id, %reason, "recording a step's outcome failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                result => break result?,
            }
        }
        Ok(())
    }

    /// One attempt of a step, up to the decision of what happens next.
    async fn attempt(
        &self,
        step: &ClaimedStep,
        workflow: &PreparedWorkflow,
        event: &EventRecord,
    ) -> (StepFinish, Option<EndpointReport>) {
        let execution = &step.execution;
        let position = usize::try_from(step.position).unwrap_or(usize::MAX);
        let Some(spec) = workflow.spec.actions.get(position) else {
            return (
                StepFinish::Failed {
                    error: format!(
                        "step {} is not in workflow version {}",
                        step.position, execution.workflow_version
                    ),
                },
                None,
            );
        };
        let Some(action) = self.actions.get(&spec.kind) else {
            return (
                StepFinish::Failed {
                    error: format!(
                        "action type `{}` is not registered in this worker",
                        spec.kind
                    ),
                },
                None,
            );
        };
        // Steps render against the entity as it is now, which later events may have changed.
        let view = event_view(event)
            .with_entity(step.entity.clone().unwrap_or_else(|| event.data.clone()));
        let ctx = match self.context(step, action.as_ref(), workflow, &view).await {
            Ok(ctx) => ctx,
            Err(e) => {
                return (
                    self.retry_or_fail(step, format!("loading the step's context: {e}"), None),
                    None,
                );
            }
        };
        let scope = view.template_scope(ctx.workflow.clone());
        let secrets = action.secret_params();
        // Rendering is bounded (fuel, work, --max-rendered-bytes) but may take tens of
        // milliseconds: it runs on a blocking thread, not on the runtime's.
        let rendered = {
            let params = spec.params.clone();
            let secrets = secrets.to_vec();
            let html = action.html_params().to_vec();
            let limits = self.settings.template_limits;
            tokio::task::spawn_blocking(move || {
                switchyard_actions::template::render_params(
                    &params, &scope, &secrets, &html, &limits,
                )
            })
            .await
            .unwrap_or_else(|e| Err(format!("the render stopped: {e}")))
        };
        let mut params = match rendered {
            Ok(params) => params,
            Err(e) => {
                return (
                    StepFinish::Failed {
                        error: format!("template error in {e}"),
                    },
                    None,
                );
            }
        };
        for &secret in secrets {
            if let Some(Value::String(sealed)) = params.get(secret) {
                match self.master_key.decrypt(
                    sealed,
                    &crate::secrets::SecretScope::workflow(
                        execution.tenant_id,
                        execution.workflow_id,
                    ),
                ) {
                    Ok(plain) => {
                        params.insert(secret.to_owned(), Value::String(plain));
                    }
                    Err(e) => {
                        return (
                            StepFinish::Failed {
                                error: format!("secret `{secret}`: {e}"),
                            },
                            None,
                        );
                    }
                }
            }
        }
        // Endpoint health is keyed by the endpoint as configured (before rendering), so saving the
        // workflow re-enables exactly what its failures disabled, templated URLs included.
        let endpoint = action.endpoint(&spec.params);
        if let Some(url) = &endpoint
            && let Some((_, reason)) = step.disabled_endpoints.iter().find(|(u, _)| u == url)
        {
            return (
                StepFinish::Failed {
                    error: format!(
                        "the endpoint {url} is disabled for this tenant ({reason}); save a workflow that uses it to enable it again"
                    ),
                },
                None,
            );
        }

        let result = self
            .execute_with_lease(step, action.execute(params, &ctx))
            .await;
        match result {
            Ok(outcome) => (
                effects::succeeded(action.as_ref(), outcome),
                endpoint.map(EndpointReport::Succeeded),
            ),
            Err(ActionError::Retryable { reason, after }) => (
                self.retry_or_fail(step, reason, after),
                endpoint.map(EndpointReport::Failed),
            ),
            Err(ActionError::Permanent { reason }) => (
                StepFinish::Failed { error: reason },
                endpoint.map(EndpointReport::Failed),
            ),
            Err(ActionError::EndpointGone { reason }) => (
                StepFinish::Failed { error: reason },
                endpoint.map(EndpointReport::Gone),
            ),
        }
    }

    fn retry_or_fail(
        &self,
        step: &ClaimedStep,
        error: String,
        after: Option<Duration>,
    ) -> StepFinish {
        let failures = usize::try_from(step.failures)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        match retry::decide(
            &self.settings.retry_schedule,
            failures,
            after,
            rand::random::<f64>(),
        ) {
            RetryDecision::After(delay) => StepFinish::Retry {
                at: now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
                error,
            },
            RetryDecision::GiveUp => StepFinish::Failed {
                error: format!("{error} (retry schedule spent after {failures} attempts)"),
            },
        }
    }

    /// Runs an action while renewing the step's lease, so a long attempt is not taken over by
    /// another worker while it is alive; a hard timeout bounds it.
    async fn execute_with_lease<F>(
        &self,
        step: &ClaimedStep,
        action: F,
    ) -> Result<switchyard_actions::Outcome, ActionError>
    where
        F: std::future::Future<Output = Result<switchyard_actions::Outcome, ActionError>>,
    {
        let renew_every = (self.settings.lease / 3).max(Duration::from_millis(100));
        let keep_alive = async {
            let mut interval = tokio::time::interval(renew_every);
            interval.tick().await;
            loop {
                interval.tick().await;
                match self
                    .store
                    .extend_lease(step.step_id, &self.worker_id, self.lease_ms())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(step = %step.step_id, "lease lost while the step ran")
                    }
                    Err(e) => tracing::warn!(error = %e, "could not renew a lease"),
                }
            }
        };
        tokio::select! {
            result = tokio::time::timeout(self.settings.step_timeout, action) => match result {
                Ok(result) => result,
                Err(_) => Err(ActionError::retryable(format!("the step ran longer than {}s", self.settings.step_timeout.as_secs()))),
            },
            () = keep_alive => Err(ActionError::retryable("lease keeper stopped")),
        }
    }

    async fn context(
        &self,
        step: &ClaimedStep,
        action: &dyn DynAction,
        workflow: &PreparedWorkflow,
        view: &EventView,
    ) -> StoreResult<StepContext> {
        let execution = &step.execution;
        let tenant = step.tenant.clone();
        let mut tenant_view = TenantView {
            id: execution.tenant_id,
            name: tenant.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
            notification_email: tenant.and_then(|t| t.notification_email),
            ..TenantView::default()
        };
        effects::load_records(
            &self.store,
            &self.master_key,
            action.needs(),
            &mut tenant_view,
        )
        .await?;
        Ok(StepContext {
            step_id: step.step_id,
            execution_id: execution.id,
            workflow_id: execution.workflow_id,
            attempt: u32::try_from(step.attempt).unwrap_or(u32::MAX),
            entity_type: execution.entity_type.clone(),
            entity_id: execution.entity_id.clone(),
            entity: view.entity.clone(),
            event: view.event.clone(),
            workflow: json!({"guid": execution.workflow_id, "name": workflow.spec.name, "version": execution.workflow_version}),
            tenant: tenant_view,
            template_limits: self.settings.template_limits,
        })
    }
}

/// Tells the queue about work committed to the database. A queue that is down is not an error
/// here: the sweeper dispatches from the database once it is back.
pub(crate) async fn dispatch_logged(dispatch: &dyn Dispatch, jobs: &[(Job, i64)]) {
    if jobs.is_empty() {
        return;
    }
    if let Err(e) = dispatch.dispatch(jobs).await {
        tracing::warn!(error = %e, count = jobs.len(), "dispatch failed; the sweeper will retry");
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Group commit of step claims: a failed batch is retried one step at a time
/// ([`batch::answer_each`]).
fn claim_batcher(
    store: Store,
    worker: String,
    lease_ms: i64,
) -> Batcher<Uuid, StoreResult<Option<Claim>>> {
    Batcher::start_parallel(BATCHES_IN_FLIGHT, move |ids: Vec<Uuid>| {
        let (store, worker) = (store.clone(), worker.clone());
        async move {
            let claim = |ids: Vec<Uuid>| {
                let (store, worker) = (store.clone(), worker.clone());
                async move { store.claim_steps(&ids, &worker, lease_ms).await }
            };
            match claim(ids.clone()).await {
                Ok(mut claims) => ids.iter().map(|id| Ok(claims.remove(id))).collect(),
                Err(error) => {
                    batch::answer_each(&ids, error, |&id| {
                        let claimed = claim(vec![id]);
                        async move { Ok(claimed.await?.remove(&id)) }
                    })
                    .await
                }
            }
        }
    })
}

/// Group commit of step outcomes, then one dispatch of what follows them; a failed batch is
/// retried one outcome at a time.
fn outcome_batcher(
    store: Store,
    worker: String,
    dispatch: Arc<dyn Dispatch>,
) -> Batcher<StepOutcome, StoreResult<()>> {
    Batcher::start_parallel(BATCHES_IN_FLIGHT, move |outcomes: Vec<StepOutcome>| {
        let (store, worker, dispatch) = (store.clone(), worker.clone(), dispatch.clone());
        async move {
            let record = |batch: Vec<StepOutcome>| {
                let (store, worker, dispatch) = (store.clone(), worker.clone(), dispatch.clone());
                async move {
                    let jobs = store.finish_steps(&worker, &batch).await?;
                    dispatch_logged(dispatch.as_ref(), &jobs).await;
                    Ok(())
                }
            };
            match record(outcomes.clone()).await {
                Ok(()) => outcomes.iter().map(|_| Ok(())).collect(),
                Err(error) => {
                    batch::answer_each(&outcomes, error, |one| record(vec![one.clone()])).await
                }
            }
        }
    })
}

/// The view of a stored event that conditions and templates see ([`EventView`]), with the event's
/// own data as the entity: what its conditions are evaluated against.
pub fn event_view(event: &EventRecord) -> EventView {
    EventView::new(
        &EventFacts {
            key: &event.event_key,
            trigger: &event.trigger,
            entity_type: &event.entity_type,
            entity_id: &event.entity_id,
            occurred_at: event.occurred_at,
            previous: event.previous.as_ref(),
            depth: event.depth,
            causation_id: event.causation_id,
        },
        event.data.clone(),
    )
}

fn chain_marker(workflow_id: Uuid, entity_type: &str, entity_id: &str) -> String {
    format!("{workflow_id}:{entity_type}:{entity_id}")
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchyard".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> EventRecord {
        EventRecord {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            event_key: "evt-1".to_owned(),
            entity_type: "order".to_owned(),
            entity_id: "o-1".to_owned(),
            trigger: "order_paid".to_owned(),
            data: json!({"total": 120}),
            previous: Some(json!({"status": "pending"})),
            occurred_at: chrono::DateTime::UNIX_EPOCH,
            received_at: chrono::DateTime::UNIX_EPOCH,
            causation_id: None,
            depth: 0,
            chain: Vec::new(),
            state: "processed".to_owned(),
            outcome: None,
        }
    }

    /// Actions (the built-in email templates among them) build the scope from their
    /// `StepContext`; it is the one the engine renders parameters against.
    #[test]
    fn a_step_context_renders_against_the_engine_s_template_scope() {
        let event = event();
        let view = event_view(&event).with_entity(json!({"total": 130}));
        let workflow = json!({"guid": Uuid::nil(), "name": "Paid", "version": 1});
        let ctx = StepContext {
            step_id: Uuid::nil(),
            execution_id: Uuid::nil(),
            workflow_id: Uuid::nil(),
            attempt: 1,
            entity_type: event.entity_type.clone(),
            entity_id: event.entity_id.clone(),
            entity: view.entity.clone(),
            event: view.event.clone(),
            workflow: workflow.clone(),
            tenant: TenantView::default(),
            template_limits: Default::default(),
        };
        assert_eq!(ctx.template_scope(), view.template_scope(workflow));
        // Conditions saw the event's own data; the step sees the entity as it is now.
        assert_eq!(
            event_view(&event).conditions(event.tenant_id).entity,
            json!({"total": 120})
        );
        assert_eq!(ctx.template_scope()["event"], event_view(&event).event);
    }
}
