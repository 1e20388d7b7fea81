//! The cron scheduler of `serve`: every `--scheduler-interval` it lists the active schedule
//! workflows, works out which ticks are due, and fires each tick exactly once across every `serve`
//! process on the database.
//!
//! # Exactly once: a claim row in the database, not a Redis lease
//!
//! A tick is claimed by inserting `(workflow_id, tick_at)` into `schedule_ticks`, whose primary key
//! lets one insert take effect (`INSERT … ON CONFLICT DO NOTHING`); only the process whose insert
//! did ingests the tick's event, in the same transaction as the claim. So:
//!
//! - the claim and the event are atomic: no process can claim a tick and die before its event
//!   exists, which a lease taken in Redis and an event written to the database could not promise
//!   (a lease expiring mid-write lets a second process fire the tick again; a lease outliving a
//!   crashed holder loses it). After the commit the event is in the database as `pending`, and the
//!   sweeper dispatches it if this process dies before it does;
//! - it works the same on SQLite, which runs without Redis, and on PostgreSQL;
//! - it survives Redis being wiped (Redis here keeps nothing on disk): the claims are where the
//!   executions are, and a restarted Redis cannot make a tick fire twice.
//!
//! The event key is `tick_<workflowId>_<tickMs>`, derived from the claim's key, so the event is
//! idempotent too. apalis-cron was not used: its tick ids are random per process (see
//! QUEUE-NOTES), so it would still need this claim, and it cannot express the catch-up rule.
//!
//! Missed ticks follow [`plan`]: the newest due tick fires when less than one period late; older
//! ones are recorded as skipped, never caught up in a storm. Each pass reloads the schedules, so a
//! toggle, an update (new cron) or a delete applies from the next tick. Memory only saves queries
//! (the last decided tick per workflow, compiled crons per version); the claim rows are the truth.

pub mod plan;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Map;
use switchyard_schemas::EntityType;
use switchyard_triggers::CronSchedule;
use uuid::Uuid;

use crate::queue::{Dispatch, Job};
use crate::store::{
    NewEvent, ScheduledWorkflow, Store, StoreError, StoreResult, TickClaim, from_ms, now_ms,
};

pub use crate::domain::schedule::{TICK_ENTITY_ID, tick_event_key};

/// Per workflow: what the last pass decided, so a pass with nothing due costs no query.
struct Tracked {
    version: i64,
    updated_at: i64,
    /// Every tick at or before this is decided (fired, skipped, or before the workflow's last
    /// save).
    after: DateTime<Utc>,
    /// The first tick after `after`; `None` when the schedule has no more ticks.
    next: Option<DateTime<Utc>>,
}

/// The scheduler of one process.
pub struct Scheduler {
    store: Store,
    /// Told about a fired tick's event after its commit.
    dispatch: Arc<dyn Dispatch>,
    /// This process's id, recorded on the ticks it claims or skips.
    worker_id: String,
    /// The schedule trigger codes of the catalog (`order_schedule`, …).
    triggers: Vec<&'static str>,
    /// Compiled per (workflow, version); `None` for a stored schedule that does not parse (it was
    /// validated when saved, so this is logged once and the workflow left alone).
    crons: HashMap<(Uuid, i64), Option<Arc<CronSchedule>>>,
    tracked: HashMap<Uuid, Tracked>,
}

impl Scheduler {
    pub fn new(store: Store, dispatch: Arc<dyn Dispatch>, worker_id: String) -> Self {
        let triggers = switchyard_triggers::all()
            .iter()
            .filter(|t| t.scheduled)
            .map(|t| t.code)
            .collect();
        Self {
            store,
            dispatch,
            worker_id,
            triggers,
            crons: HashMap::new(),
            tracked: HashMap::new(),
        }
    }

    /// Runs a pass every `interval` until `stop` resolves. A failing pass (the database away) is
    /// logged and the next one tries again; the claims make a retried tick safe.
    pub async fn run(
        mut self,
        interval: Duration,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        // After a slow pass, wait a whole interval rather than running passes back to back.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                _ = ticker.tick() => {}
            }
            // A pass cut short by shutdown rolls back its open transaction; what it committed is
            // finished by the sweeper, and a claim not made is made by the next process.
            tokio::select! {
                () = &mut stop => return Ok(()),
                result = self.pass(Utc::now()) => if let Err(e) = result {
                    tracing::warn!(error = %e, "scheduler pass failed; retrying next interval");
                }
            }
        }
    }

    /// One pass at `now`: every active schedule, its due tick fired or skipped.
    pub async fn pass(&mut self, now: DateTime<Utc>) -> StoreResult<()> {
        let schedules = self.store.active_schedules(&self.triggers).await?;
        // Toggled off, deleted, or moved to another trigger: forget them, so a workflow toggled on
        // again starts from its new `updated_at`.
        let live: HashSet<Uuid> = schedules.iter().map(|s| s.id).collect();
        self.tracked.retain(|id, _| live.contains(id));
        let versions: HashSet<(Uuid, i64)> = schedules.iter().map(|s| (s.id, s.version)).collect();
        self.crons.retain(|key, _| versions.contains(key));
        for schedule in &schedules {
            if let Err(e) = self.visit(schedule, now).await {
                tracing::warn!(workflow = %schedule.id, error = %e, "schedule tick not recorded; retrying next pass");
            }
        }
        metrics::gauge!("switchyard_schedules_active").set(schedules.len() as f64);
        Ok(())
    }

    async fn visit(&mut self, s: &ScheduledWorkflow, now: DateTime<Utc>) -> StoreResult<()> {
        let Some(cron) = self.cron(s).await? else {
            return Ok(());
        };
        let saved = from_ms(s.updated_at);
        let after = match self.tracked.get(&s.id) {
            // Saved again (new version, toggled off and on): ticks before the save are not
            // owed, whatever the old cron said.
            Some(t) if t.version == s.version && t.updated_at == s.updated_at => {
                if t.next.is_none_or(|next| next > now) {
                    return Ok(());
                }
                t.after
            }
            Some(t) => t.after.max(saved),
            None => {
                let last = self.store.last_tick(s.tenant_id, s.id).await?.map(from_ms);
                last.map_or(saved, |last| last.max(saved))
            }
        };
        let decided = match plan::plan(&cron, after, now) {
            None => after,
            Some(plan) => {
                let claim = |tick: DateTime<Utc>| TickClaim {
                    workflow_id: s.id,
                    tenant_id: s.tenant_id,
                    workflow_version: s.version,
                    tick_at: tick.timestamp_millis(),
                    recorded_by: self.worker_id.clone(),
                };
                if let Some(skip) = &plan.skip {
                    let recorded = self
                        .store
                        .skip_tick(&claim(skip.tick), &skip.reason)
                        .await?;
                    if recorded {
                        tracing::info!(workflow = %s.id, tick = %skip.tick, reason = %skip.reason, "schedule tick skipped");
                        metrics::counter!("switchyard_schedule_ticks_total", "outcome" => "skipped").increment(1);
                    }
                }
                if let Some(tick) = plan.fire {
                    self.fire(s, claim(tick)).await?;
                }
                plan.decided_through
            }
        };
        self.tracked.insert(
            s.id,
            Tracked {
                version: s.version,
                updated_at: s.updated_at,
                after: decided,
                next: cron.next_after(decided),
            },
        );
        Ok(())
    }

    /// Claims the tick and, if this process got it, stores its event (one transaction) and then
    /// dispatches it.
    async fn fire(&self, s: &ScheduledWorkflow, claim: TickClaim) -> StoreResult<()> {
        let entity_type = s
            .entity_type
            .parse::<EntityType>()
            .map_err(|e| StoreError::Corrupt(format!("workflow {} has entity type {e}", s.id)))?;
        let event = NewEvent {
            tenant_id: s.tenant_id,
            event_key: Some(tick_event_key(s.id, claim.tick_at)),
            entity_type,
            entity_id: TICK_ENTITY_ID.to_owned(),
            trigger: s.trigger.clone(),
            data: Map::new(),
            previous: Some(Map::new()),
            occurred_at: Some(claim.tick_at),
            causation_id: None,
            depth: 0,
            chain: Vec::new(),
            update_entity: false,
            source_modified_at: None,
        };
        let Some(event_id) = self.store.claim_tick(&claim, &event).await? else {
            return Ok(());
        };
        tracing::debug!(workflow = %s.id, tick = claim.tick_at, "schedule tick fired");
        metrics::counter!("switchyard_schedule_ticks_total", "outcome" => "fired").increment(1);
        let job = Job::ProcessEvent {
            tenant_id: s.tenant_id,
            event_id,
        };
        // The event is committed as `pending`: a queue that is down now is not an error, the
        // sweeper dispatches it once the queue is back.
        if let Err(e) = self.dispatch.dispatch(&[(job, now_ms())]).await {
            tracing::warn!(workflow = %s.id, error = %e, "dispatching a tick's event failed; the sweeper will retry");
        }
        Ok(())
    }

    /// The workflow version's compiled schedule, read and parsed once.
    async fn cron(&mut self, s: &ScheduledWorkflow) -> StoreResult<Option<Arc<CronSchedule>>> {
        if let Some(found) = self.crons.get(&(s.id, s.version)) {
            return Ok(found.clone());
        }
        let spec = self
            .store
            .workflow_version(s.tenant_id, s.id, s.version)
            .await?;
        let compiled = match spec.as_ref().and_then(|spec| spec.schedule.as_ref()) {
            Some(schedule) => match CronSchedule::parse(schedule) {
                Ok(cron) => Some(Arc::new(cron)),
                Err(e) => {
                    tracing::error!(workflow = %s.id, version = s.version, error = %e, "stored schedule does not parse; the workflow will not tick");
                    None
                }
            },
            None => {
                tracing::error!(workflow = %s.id, version = s.version, "schedule workflow without a schedule; it will not tick");
                None
            }
        };
        self.crons.insert((s.id, s.version), compiled.clone());
        Ok(compiled)
    }
}
