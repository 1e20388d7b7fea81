//! Schedule ticks: which active workflows have a schedule, and the `schedule_ticks` rows that
//! record each tick fired or skipped. A tick's row is its claim: the `(workflow_id, tick_at)`
//! primary key lets exactly one process record it.

use uuid::Uuid;

use super::events::{NewEvent, insert_event};
use super::row::Columns;
use super::{Store, StoreError, StoreResult, now_ms};

/// An active workflow on a schedule trigger, as the scheduler lists it on every pass. The spec
/// (with the cron expression) is read only when this version was not seen before.
#[derive(Debug, Clone)]
pub struct ScheduledWorkflow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub entity_type: String,
    pub trigger: String,
    pub version: i64,
    /// Milliseconds; moves on every update and toggle, so ticks before it are not "missed".
    pub updated_at: i64,
}

/// One recorded tick, for `GET /api/workflows/configured/{guid}/ticks`.
#[derive(Debug, Clone)]
pub struct TickRecord {
    pub tick_at: i64,
    pub workflow_version: i64,
    pub skipped: bool,
    pub reason: Option<String>,
    pub event_key: Option<String>,
    pub recorded_at: i64,
}

/// What the scheduler records for a tick.
#[derive(Debug, Clone)]
pub struct TickClaim {
    pub workflow_id: Uuid,
    pub tenant_id: Uuid,
    pub workflow_version: i64,
    pub tick_at: i64,
    /// The process recording it (for operators reading the table).
    pub recorded_by: String,
}

impl Store {
    /// Every tenant's active, live workflows on one of `triggers` (the catalog's schedule
    /// triggers). Reads across tenants, as the scheduler must; it returns ids, versions and
    /// times, nothing a tenant wrote.
    pub async fn active_schedules(&self, triggers: &[&str]) -> StoreResult<Vec<ScheduledWorkflow>> {
        if triggers.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=triggers.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT id, tenant_id, entity_type, trigger_code, current_version, updated_at \
             FROM workflows WHERE trigger_code IN ({}) AND is_active = 1 AND deleted_at IS NULL",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for trigger in triggers {
            query = query.bind(*trigger);
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                let r = Columns::of(r);
                Ok(ScheduledWorkflow {
                    id: r.uuid("id")?,
                    tenant_id: r.uuid("tenant_id")?,
                    entity_type: r.get("entity_type")?,
                    trigger: r.get("trigger_code")?,
                    version: r.get("current_version")?,
                    updated_at: r.get("updated_at")?,
                })
            })
            .collect()
    }

    /// The latest tick recorded for a workflow (fired or skipped), in milliseconds.
    pub async fn last_tick(&self, tenant_id: Uuid, workflow_id: Uuid) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT MAX(tick_at) AS tick_at FROM schedule_ticks WHERE tenant_id = $1 AND workflow_id = $2",
        )
        .bind(tenant_id.to_string())
        .bind(workflow_id.to_string())
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Columns::of(&row).get::<Option<i64>>("tick_at")
    }

    /// Claims a tick and stores its event, in one transaction. `None` when another process
    /// recorded this tick first (fired or skipped): then nothing is stored and nothing must be
    /// dispatched. Otherwise the event's id, to dispatch once committed.
    pub async fn claim_tick(
        &self,
        claim: &TickClaim,
        event: &NewEvent,
    ) -> StoreResult<Option<Uuid>> {
        let mut tx = self.write_tx().await?;
        // The claim goes first: on PostgreSQL a concurrent claimer waits here on the primary key
        // until this transaction ends, then does nothing; on SQLite writers are serialised.
        let claimed = insert_tick(&mut tx, claim, None, event.event_key.as_deref()).await?;
        if !claimed {
            tx.rollback().await.map_err(StoreError::from_sqlx)?;
            return Ok(None);
        }
        let ingested = insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        // The event key is derived from the claim's primary key, so a duplicate cannot happen
        // while claim rows are kept; if one does, that event was queued by whoever stored it.
        Ok((!ingested.duplicate).then_some(ingested.id))
    }

    /// Records a tick as skipped, unless some process already recorded it. Whether it did is
    /// returned, for logs.
    pub async fn skip_tick(&self, claim: &TickClaim, reason: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let recorded = insert_tick(&mut tx, claim, Some(reason), None).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(recorded)
    }

    /// A workflow's recorded ticks, newest first.
    pub async fn list_ticks(
        &self,
        tenant_id: Uuid,
        workflow_id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<TickRecord>> {
        let rows = sqlx::query(
            "SELECT tick_at, workflow_version, skipped, reason, event_key, recorded_at \
             FROM schedule_ticks WHERE tenant_id = $1 AND workflow_id = $2 \
             ORDER BY tick_at DESC LIMIT $3",
        )
        .bind(tenant_id.to_string())
        .bind(workflow_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                let r = Columns::of(r);
                Ok(TickRecord {
                    tick_at: r.get("tick_at")?,
                    workflow_version: r.get("workflow_version")?,
                    skipped: r.flag("skipped")?,
                    reason: r.get("reason")?,
                    event_key: r.get("event_key")?,
                    recorded_at: r.get("recorded_at")?,
                })
            })
            .collect()
    }
}

/// Inserts a tick's row unless one exists; whether this insert took effect.
async fn insert_tick(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    claim: &TickClaim,
    skipped_reason: Option<&str>,
    event_key: Option<&str>,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO schedule_ticks (workflow_id, tick_at, tenant_id, workflow_version, skipped, \
         reason, event_key, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (workflow_id, tick_at) DO NOTHING",
    )
    .bind(claim.workflow_id.to_string())
    .bind(claim.tick_at)
    .bind(claim.tenant_id.to_string())
    .bind(claim.workflow_version)
    .bind(i64::from(skipped_reason.is_some()))
    .bind(skipped_reason)
    .bind(event_key)
    .bind(&claim.recorded_by)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(inserted.rows_affected() == 1)
}
