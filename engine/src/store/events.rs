//! Events and the entity store. Ingesting an event stores it (idempotent on the tenant's
//! `eventId`), snapshots the entity's previous data and records the new data, in one transaction.

use serde_json::{Map, Value};
use switchyard_schemas::EntityType;
use uuid::Uuid;

use super::row::Columns;
use super::tenants::{parse_uuid, tenant_and_id};
use super::{Store, StoreError, StoreResult, from_ms, now_ms};
use crate::domain::staleness;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: Uuid,
    /// The client's idempotency key; a new one is generated when absent.
    pub event_key: Option<String>,
    pub entity_type: EntityType,
    pub entity_id: String,
    pub trigger: String,
    pub data: Map<String, Value>,
    /// The sender's view of the previous state; the stored entity is used when absent.
    pub previous: Option<Map<String, Value>>,
    pub occurred_at: Option<i64>,
    pub causation_id: Option<Uuid>,
    pub depth: i64,
    pub chain: Vec<String>,
    /// Whether `data` becomes the entity's latest data (false for schedule ticks, whose entity is
    /// `{}`).
    pub update_entity: bool,
    /// The resource's own modification time (Unix ms) as a store delivery states it; `None` for
    /// events without one, which are never stale (see [`crate::domain::staleness`]).
    pub source_modified_at: Option<i64>,
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub event_key: String,
    pub entity_type: String,
    pub entity_id: String,
    pub trigger: String,
    pub data: Value,
    pub previous: Option<Value>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub causation_id: Option<Uuid>,
    pub depth: i64,
    pub chain: Vec<String>,
    pub state: String,
    pub outcome: Option<Value>,
}

/// What ingesting an event did.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub id: Uuid,
    pub event_key: String,
    pub duplicate: bool,
    /// Stored, but older than its entity's stored source time: it changed and started nothing.
    pub stale: bool,
}

pub(crate) const EVENT_COLUMNS: &str = "id, tenant_id, event_key, entity_type, entity_id, trig, data, previous, \
     occurred_at, received_at, causation_id, depth, chain, state, outcome";

fn json(text: &str, what: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// An event from [`EVENT_COLUMNS`] (under a table prefix when the query joined others).
pub(crate) fn decode_event(row: Columns<'_>) -> StoreResult<EventRecord> {
    let previous: Option<String> = row.get("previous")?;
    let chain: String = row.get("chain")?;
    let outcome: Option<String> = row.get("outcome")?;
    Ok(EventRecord {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        event_key: row.get("event_key")?,
        entity_type: row.get("entity_type")?,
        entity_id: row.get("entity_id")?,
        trigger: row.get("trig")?,
        data: json(&row.get::<String>("data")?, "event data")?,
        previous: previous
            .as_deref()
            .map(|p| json(p, "event previous"))
            .transpose()?,
        occurred_at: row.time("occurred_at")?,
        received_at: row.time("received_at")?,
        causation_id: row.opt_uuid("causation_id")?,
        depth: row.get("depth")?,
        chain: serde_json::from_str(&chain).unwrap_or_default(),
        state: row.get("state")?,
        outcome: outcome
            .as_deref()
            .map(|o| json(o, "event outcome"))
            .transpose()?,
    })
}

/// Stores an event inside `tx`; a second event with the same key starts nothing.
pub(crate) async fn insert_event(tx: &mut Tx, event: &NewEvent) -> StoreResult<Ingested> {
    let id = Uuid::now_v7();
    let key = event
        .event_key
        .clone()
        .unwrap_or_else(|| format!("evt_{}", id.simple()));
    let tenant = event.tenant_id.to_string();
    let now = now_ms();

    if event.source_modified_at.is_some() && event.update_entity {
        lock_entities(
            tx,
            [(
                event.tenant_id,
                event.entity_type.as_str(),
                event.entity_id.as_str(),
            )],
        )
        .await?;
    }
    let row = sqlx::query(
        "SELECT data, source_modified_at FROM entities \
         WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
    )
    .bind(&tenant)
    .bind(event.entity_type.as_str())
    .bind(&event.entity_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    let (stored, stored_source): (Option<String>, Option<i64>) = match &row {
        Some(r) => {
            let r = Columns::of(r);
            (Some(r.get("data")?), r.get("source_modified_at")?)
        }
        None => (None, None),
    };
    let freshness = if event.update_entity {
        staleness::decide(event.source_modified_at, stored_source)
    } else {
        staleness::Freshness::Unsourced
    };
    let previous = match &event.previous {
        Some(p) => Some(Value::Object(p.clone()).to_string()),
        None => stored,
    };
    // A stale event is stored already matched: it starts nothing.
    let (state, outcome) = match (freshness, event.source_modified_at) {
        (staleness::Freshness::Stale { stored }, Some(incoming)) => (
            "processed",
            Some(staleness::stale_outcome(None, incoming, stored).to_string()),
        ),
        _ => ("pending", None),
    };

    let inserted = sqlx::query(
        // An emitted event inherits its cause's chain root (the cause's own id when the cause
        // is a root), for the chain's execution limit.
        "INSERT INTO events (id, tenant_id, event_key, entity_type, entity_id, trig, data, previous, \
         occurred_at, received_at, causation_id, depth, chain, state, outcome, root_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         (SELECT COALESCE(c.root_id, c.id) FROM events c WHERE c.id = $11)) \
         ON CONFLICT (tenant_id, event_key) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(&tenant)
    .bind(&key)
    .bind(event.entity_type.as_str())
    .bind(&event.entity_id)
    .bind(&event.trigger)
    .bind(Value::Object(event.data.clone()).to_string())
    .bind(previous)
    .bind(event.occurred_at.unwrap_or(now))
    .bind(now)
    .bind(event.causation_id.map(|c| c.to_string()))
    .bind(event.depth)
    .bind(serde_json::to_string(&event.chain).unwrap_or_else(|_| "[]".to_owned()))
    .bind(state)
    .bind(outcome)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;

    if inserted.rows_affected() == 0 {
        let existing = sqlx::query("SELECT id FROM events WHERE tenant_id = $1 AND event_key = $2")
            .bind(&tenant)
            .bind(&key)
            .fetch_one(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        let existing: String = Columns::of(&existing).get("id")?;
        return Ok(Ingested {
            id: parse_uuid(&existing)?,
            event_key: key,
            duplicate: true,
            stale: false,
        });
    }

    if event.update_entity && !freshness.is_stale() {
        let status = entity_status(&Value::Object(event.data.clone()));
        let sql = format!(
            "INSERT INTO entities (tenant_id, entity_type, entity_id, data, status, updated_at, \
             source_modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7) {ENTITY_UPSERT}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&tenant)
            .bind(event.entity_type.as_str())
            .bind(&event.entity_id)
            .bind(Value::Object(event.data.clone()).to_string())
            .bind(status)
            .bind(now)
            .bind(freshness.stored_after(stored_source))
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    Ok(Ingested {
        id,
        event_key: key,
        duplicate: false,
        stale: freshness.is_stale(),
    })
}

/// How an entity row is upserted: the newest data wins, and the stored source time only moves
/// forward (an event without one keeps it). The `WHERE` repeats the staleness rule as a guard:
/// the callers decide under a lock, so it never refuses what they found fresh.
const ENTITY_UPSERT: &str = "ON CONFLICT (tenant_id, entity_type, entity_id) \
     DO UPDATE SET data = excluded.data, status = excluded.status, updated_at = excluded.updated_at, \
     source_modified_at = COALESCE(excluded.source_modified_at, entities.source_modified_at) \
     WHERE excluded.source_modified_at IS NULL OR entities.source_modified_at IS NULL \
     OR excluded.source_modified_at >= entities.source_modified_at";

/// Serialises, on PostgreSQL, the transactions deciding the staleness of these entities: a
/// transaction-scoped advisory lock per entity, taken in a fixed order (no deadlock between two
/// batches), held to commit. Unlike `SELECT … FOR UPDATE` it also covers an entity no row exists
/// for yet. On SQLite the write transaction (`BEGIN IMMEDIATE`) already holds the database's one
/// write lock.
async fn lock_entities<'a>(
    tx: &mut Tx,
    entities: impl IntoIterator<Item = (Uuid, &'a str, &'a str)>,
) -> StoreResult<()> {
    if !tx.backend_name().eq_ignore_ascii_case("postgresql") {
        return Ok(());
    }
    let mut keys: Vec<String> = entities
        .into_iter()
        .map(|(tenant, entity_type, id)| format!("{tenant}\u{1f}{entity_type}\u{1f}{id}"))
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        sqlx::query(
            "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS l",
        )
        .bind(key)
        .fetch_one(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    }
    Ok(())
}

/// Takes up to `wanted` executions from the causal chain of `event_id` (at most `limit` in all,
/// counting its root event's own), inside `tx`; returns how many may start. See migration 0006.
pub(crate) async fn reserve_chain_executions(
    tx: &mut Tx,
    event_id: Uuid,
    wanted: usize,
    limit: u32,
) -> StoreResult<usize> {
    if wanted == 0 {
        return Ok(0);
    }
    let root: Option<String> =
        sqlx::query("SELECT COALESCE(root_id, id) AS root_id FROM events WHERE id = $1")
            .bind(event_id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?
            .map(|r| Columns::of(&r).get("root_id"))
            .transpose()?;
    let root = root.unwrap_or_else(|| event_id.to_string());
    sqlx::query(
        "INSERT INTO event_chains (root_id, executions) \
         SELECT $1, COUNT(*) FROM executions WHERE event_id = $1 \
         ON CONFLICT (root_id) DO NOTHING",
    )
    .bind(&root)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    let wanted_i64 = i64::try_from(wanted).unwrap_or(i64::MAX);
    let after = sqlx::query(
        "UPDATE event_chains SET executions = executions + $1 WHERE root_id = $2 RETURNING executions",
    )
    .bind(wanted_i64)
    .bind(&root)
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    let after: i64 = Columns::of(&after).get("executions")?;
    let before = after.saturating_sub(wanted_i64);
    let room = (i64::from(limit) - before).clamp(0, wanted_i64);
    Ok(usize::try_from(room).unwrap_or(0))
}

/// An API event ready to be written: its id and key assigned, its previous data resolved and its
/// matching decided, so storing it, updating the entity and starting its executions is one
/// transaction of multi-row statements for a whole batch.
#[derive(Debug, Clone)]
pub struct EventWrite {
    pub record: EventRecord,
    pub update_entity: bool,
    pub executions: Vec<super::NewExecution>,
    /// The store delivery's source time (see [`NewEvent::source_modified_at`]).
    pub source_modified_at: Option<i64>,
    /// Set by the write when the event turns out stale (never by the caller).
    pub stale: bool,
    /// What the event cancels (`cancelOn`), applied before its executions are started.
    pub cancels: Vec<super::CancelHit>,
    /// Executions that earlier events of the same batch start and this one cancels: cancelled
    /// once they exist, as if the events had been written one at a time.
    pub cancels_in_batch: Vec<super::CancelHit>,
}

impl EventRecord {
    /// The record an event will have once stored with `id`, `key` and `previous`.
    pub fn from_new(event: &NewEvent, id: Uuid, key: String, previous: Option<Value>) -> Self {
        let now = now_ms();
        EventRecord {
            id,
            tenant_id: event.tenant_id,
            event_key: key,
            entity_type: event.entity_type.as_str().to_owned(),
            entity_id: event.entity_id.clone(),
            trigger: event.trigger.clone(),
            data: Value::Object(event.data.clone()),
            previous,
            occurred_at: from_ms(event.occurred_at.unwrap_or(now)),
            received_at: from_ms(now),
            causation_id: event.causation_id,
            depth: event.depth,
            chain: event.chain.clone(),
            state: "pending".to_owned(),
            outcome: None,
        }
    }
}

/// The batch with each store delivery decided against its entity's stored source time, in batch
/// order (a delivery is compared with the newest time before it, stored or earlier in the batch):
/// a stale one starts nothing (its would-be matches are refused with reason `stale`) and does not
/// touch its entity. Takes the entities' locks ([`lock_entities`]) first.
async fn decide_staleness(tx: &mut Tx, writes: &[EventWrite]) -> StoreResult<Vec<EventWrite>> {
    let keys: Vec<(Uuid, &str, &str)> = writes
        .iter()
        .filter(|w| w.update_entity && w.source_modified_at.is_some())
        .map(|w| {
            let r = &w.record;
            (r.tenant_id, r.entity_type.as_str(), r.entity_id.as_str())
        })
        .collect();
    lock_entities(tx, keys.iter().copied()).await?;
    let mut times: std::collections::HashMap<(Uuid, &str, &str), Option<i64>> =
        std::collections::HashMap::new();
    for key in keys {
        if times.contains_key(&key) {
            continue;
        }
        let row = sqlx::query(
            "SELECT source_modified_at FROM entities \
             WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
        )
        .bind(key.0.to_string())
        .bind(key.1)
        .bind(key.2)
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let stored = match &row {
            Some(r) => Columns::of(r).get::<Option<i64>>("source_modified_at")?,
            None => None,
        };
        times.insert(key, stored);
    }
    let mut out = writes.to_vec();
    for (write, original) in out.iter_mut().zip(writes) {
        let r = &original.record;
        let key = (r.tenant_id, r.entity_type.as_str(), r.entity_id.as_str());
        if !write.update_entity {
            continue;
        }
        let Some(stored) = times.get_mut(&key) else {
            continue;
        };
        let freshness = staleness::decide(write.source_modified_at, *stored);
        if let (staleness::Freshness::Stale { stored }, Some(incoming)) =
            (freshness, write.source_modified_at)
        {
            write.record.outcome = Some(staleness::stale_outcome(
                write.record.outcome.as_ref(),
                incoming,
                stored,
            ));
            write.executions.clear();
            write.update_entity = false;
            write.stale = true;
        }
        *stored = freshness.stored_after(*stored);
    }
    Ok(out)
}

/// The `status` column of the entity store: the data's `status`, as text.
fn entity_status(data: &Value) -> Option<String> {
    data.get("status").and_then(|s| match s {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

impl Store {
    /// Which of these client event ids the tenant already has: key → stored event id.
    pub async fn event_ids_by_key(
        &self,
        tenant_id: Uuid,
        keys: &[String],
    ) -> StoreResult<std::collections::HashMap<String, Uuid>> {
        let mut found = std::collections::HashMap::new();
        for chunk in super::pow2_chunks(keys) {
            // One lookup per key (a correlated subquery), not `event_key IN (…)`: PostgreSQL,
            // before its statistics exist, answers an `IN` list by walking the tenant's events.
            let sql = format!(
                "WITH v (k) AS (VALUES {}) SELECT v.k, \
                 (SELECT e.id FROM events e WHERE e.tenant_id = $1 AND e.event_key = v.k) AS id FROM v",
                super::values_list(chunk.len(), 1, 2)
            );
            // Planned on every call (not a cached prepared statement): a plan cached while the
            // tenant had few events ties `events_tenant` with the unique key and may keep
            // walking every event of the tenant (2 ms a call at 25,000 events, seen with
            // auto_explain); planned with the values, the unique key wins once there are more.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(tenant_id.to_string());
            for key in chunk {
                query = query.bind(key.clone());
            }
            for row in query
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?
            {
                let row = Columns::of(&row);
                if let Some(id) = row.opt_uuid("id")? {
                    found.insert(row.get("k")?, id);
                }
            }
        }
        Ok(found)
    }

    /// The stored data of these entities of one tenant and type: entity id → data.
    pub async fn entities_data(
        &self,
        tenant_id: Uuid,
        entity_type: &str,
        ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, Value>> {
        let mut found = std::collections::HashMap::new();
        for chunk in super::pow2_chunks(ids) {
            // One lookup per entity (a correlated subquery), not `entity_id IN (…)`, which
            // PostgreSQL, before its statistics exist, answers by walking every entity of the
            // tenant and type.
            let sql = format!(
                "WITH v (k) AS (VALUES {}) SELECT v.k, (SELECT e.data FROM entities e \
                 WHERE e.tenant_id = $1 AND e.entity_type = $2 AND e.entity_id = v.k) AS data FROM v",
                super::values_list(chunk.len(), 1, 3)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id.to_string())
                .bind(entity_type.to_owned());
            for id in chunk {
                query = query.bind(id.clone());
            }
            for row in query
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?
            {
                let row = Columns::of(&row);
                if let Some(data) = row.get::<Option<String>>("data")? {
                    found.insert(row.get("k")?, json(&data, "entity data")?);
                }
            }
        }
        Ok(found)
    }

    /// Stores matched events, updates their entities and starts their executions, in one durable
    /// transaction. An event whose key another request stored meanwhile comes back a duplicate
    /// (with the stored id) and starts nothing. Returns, per event, what was stored and the first
    /// steps to dispatch.
    pub async fn write_matched_events(
        &self,
        writes: &[EventWrite],
    ) -> StoreResult<Vec<(Ingested, Vec<(Uuid, i64)>)>> {
        let mut tx = self.write_tx().await?;
        // Store deliveries with a source time are decided against their entities' stored time
        // here, under the lock; events without one (the hot API path) cost nothing more.
        let decided;
        let writes: &[EventWrite] = if writes
            .iter()
            .any(|w| w.update_entity && w.source_modified_at.is_some())
        {
            decided = decide_staleness(&mut tx, writes).await?;
            &decided
        } else {
            writes
        };
        let mut inserted = std::collections::HashSet::new();
        for chunk in super::pow2_chunks(writes) {
            let sql = format!(
                "INSERT INTO events (id, tenant_id, event_key, entity_type, entity_id, trig, data, previous, \
                 occurred_at, received_at, causation_id, depth, chain, state, outcome) VALUES {} \
                 ON CONFLICT (tenant_id, event_key) DO NOTHING RETURNING id",
                super::values_list(chunk.len(), 15, 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for write in chunk {
                let event = &write.record;
                query = query
                    .bind(event.id.to_string())
                    .bind(event.tenant_id.to_string())
                    .bind(event.event_key.clone())
                    .bind(event.entity_type.clone())
                    .bind(event.entity_id.clone())
                    .bind(event.trigger.clone())
                    .bind(event.data.to_string())
                    .bind(event.previous.as_ref().map(Value::to_string))
                    .bind(event.occurred_at.timestamp_millis())
                    .bind(event.received_at.timestamp_millis())
                    .bind(event.causation_id.map(|c| c.to_string()))
                    .bind(event.depth)
                    .bind(serde_json::to_string(&event.chain).unwrap_or_else(|_| "[]".to_owned()))
                    .bind("processed")
                    .bind(event.outcome.as_ref().map(Value::to_string));
            }
            for row in query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
            {
                inserted.insert(Columns::of(&row).get::<String>("id")?);
            }
        }
        let stored: Vec<&EventWrite> = writes
            .iter()
            .filter(|w| inserted.contains(&w.record.id.to_string()))
            .collect();

        // The entity store keeps each entity's latest data: the last event of the batch wins.
        let mut latest: Vec<&EventRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for write in stored.iter().rev().filter(|w| w.update_entity) {
            let r = &write.record;
            if seen.insert((r.tenant_id, r.entity_type.as_str(), r.entity_id.as_str())) {
                latest.push(r);
            }
        }
        // Each entity's source time after the batch: the newest of its fresh deliveries.
        let mut sourced: std::collections::HashMap<(Uuid, &str, &str), i64> =
            std::collections::HashMap::new();
        for write in stored.iter().filter(|w| w.update_entity) {
            if let Some(t) = write.source_modified_at {
                let r = &write.record;
                let slot = sourced
                    .entry((r.tenant_id, r.entity_type.as_str(), r.entity_id.as_str()))
                    .or_insert(t);
                *slot = (*slot).max(t);
            }
        }
        let now = now_ms();
        for chunk in super::pow2_chunks(&latest) {
            let sql = format!(
                "INSERT INTO entities (tenant_id, entity_type, entity_id, data, status, updated_at, \
                 source_modified_at) VALUES {} {ENTITY_UPSERT}",
                super::values_list(chunk.len(), 7, 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for event in chunk {
                query = query
                    .bind(event.tenant_id.to_string())
                    .bind(event.entity_type.clone())
                    .bind(event.entity_id.clone())
                    .bind(event.data.to_string())
                    .bind(entity_status(&event.data))
                    .bind(now)
                    .bind(
                        sourced
                            .get(&(
                                event.tenant_id,
                                event.entity_type.as_str(),
                                event.entity_id.as_str(),
                            ))
                            .copied(),
                    );
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }

        let cancels: Vec<super::CancelHit> = stored
            .iter()
            .flat_map(|w| w.cancels.iter().cloned())
            .collect();
        super::cancel_on_hits(&mut tx, &cancels).await?;

        let executions: Vec<super::NewExecution> = stored
            .iter()
            .flat_map(|w| w.executions.iter().cloned())
            .collect();
        let first_steps: std::collections::HashMap<Uuid, i64> =
            super::insert_executions(&mut tx, &executions)
                .await?
                .into_iter()
                .collect();
        let in_batch: Vec<super::CancelHit> = stored
            .iter()
            .flat_map(|w| w.cancels_in_batch.iter().cloned())
            .collect();
        super::cancel_on_hits(&mut tx, &in_batch).await?;

        let mut out = Vec::with_capacity(writes.len());
        for write in writes {
            let event = &write.record;
            if inserted.contains(&event.id.to_string()) {
                let steps = write
                    .executions
                    .iter()
                    .filter_map(|e| e.steps.first().map(|(id, _)| *id))
                    .filter_map(|id| first_steps.get(&id).map(|at| (id, *at)))
                    .collect();
                out.push((
                    Ingested {
                        id: event.id,
                        event_key: event.event_key.clone(),
                        duplicate: false,
                        stale: write.stale,
                    },
                    steps,
                ));
            } else {
                let existing =
                    sqlx::query("SELECT id FROM events WHERE tenant_id = $1 AND event_key = $2")
                        .bind(event.tenant_id.to_string())
                        .bind(event.event_key.clone())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                let existing: String = Columns::of(&existing).get("id")?;
                out.push((
                    Ingested {
                        id: parse_uuid(&existing)?,
                        event_key: event.event_key.clone(),
                        duplicate: true,
                        stale: false,
                    },
                    Vec::new(),
                ));
            }
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(out)
    }

    /// Stores an event and updates the entity store, in one transaction.
    pub async fn ingest_event(&self, event: &NewEvent) -> StoreResult<Ingested> {
        let mut tx = self.write_tx().await?;
        let ingested = insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(ingested)
    }

    pub async fn event(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<EventRecord>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 AND tenant_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(tenant_id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(|row| decode_event(Columns::of(row)))
            .transpose()
    }

    /// An event found by the client's own id (`eventId`).
    pub async fn event_by_key(
        &self,
        tenant_id: Uuid,
        key: &str,
    ) -> StoreResult<Option<EventRecord>> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_key = $1 AND tenant_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(tenant_id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(|row| decode_event(Columns::of(row)))
            .transpose()
    }

    /// The tenant's events, newest first, optionally of one entity type and trigger, within a
    /// size budget: the first rows whose stored `data`, `previous` and `outcome` add up to at
    /// most `max_chars` (always at least one row; see [`super::within_budget`]). The flag says
    /// whether the budget cut the page short (more rows follow).
    pub async fn list_events_within(
        &self,
        tenant_id: Uuid,
        filter: Option<(&str, &str)>,
        before: Option<Uuid>,
        limit: u32,
        max_chars: i64,
    ) -> StoreResult<(Vec<EventRecord>, bool)> {
        let mut sql = "SELECT id, LENGTH(data) + COALESCE(LENGTH(previous), 0) + \
                       COALESCE(LENGTH(outcome), 0) AS size FROM events WHERE tenant_id = $1"
            .to_owned();
        let mut n = 2;
        if before.is_some() {
            sql.push_str(" AND id < $2");
            n = 3;
        }
        if filter.is_some() {
            sql.push_str(&format!(" AND entity_type = ${n} AND trig = ${}", n + 1));
            n += 2;
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${n}"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant_id.to_string());
        if let Some(before) = before {
            query = query.bind(before.to_string());
        }
        if let Some((entity_type, trigger)) = filter {
            query = query.bind(entity_type.to_owned()).bind(trigger.to_owned());
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
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id IN ({}) ORDER BY id DESC",
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
        let events = rows
            .iter()
            .map(|row| decode_event(Columns::of(row)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((events, cut))
    }

    /// The event, if it still waits to be matched.
    pub async fn pending_event(&self, id: Uuid) -> StoreResult<Option<EventRecord>> {
        // The state test is a CASE so no index on `state` can serve it: a plan made while the
        // table was small may otherwise scan every pending event instead of the primary key.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 \
             AND CASE state WHEN 'pending' THEN TRUE ELSE FALSE END"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(|row| decode_event(Columns::of(row)))
            .transpose()
    }

    /// Pending events nobody holds, oldest first, as (tenant id, event id): the sweeper's safety
    /// net.
    pub async fn pending_events(
        &self,
        received_before: i64,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, Uuid)>> {
        let rows = sqlx::query(
            "SELECT tenant_id, id FROM events WHERE state = 'pending' AND received_at <= $1 \
             AND (lease_until IS NULL OR lease_until < $2) ORDER BY received_at LIMIT $3",
        )
        .bind(received_before)
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(tenant_and_id).collect()
    }

    /// Pending events nobody holds, at most `limit`, as (tenant id, event id), served round-robin
    /// across tenants like [`Store::due_steps`] (the SQLite dispatcher's queue): tenants found by
    /// index seeks on `events_pending_by_tenant`, each one's oldest events read from it.
    pub async fn pending_events_in_turn(
        &self,
        received_before: i64,
        limit: u32,
    ) -> StoreResult<Vec<(Uuid, Uuid)>> {
        let rows = sqlx::query(
            "WITH RECURSIVE waiting(tenant_id) AS ( \
               SELECT MIN(tenant_id) FROM events WHERE state = 'pending' \
               UNION ALL \
               SELECT (SELECT MIN(e.tenant_id) FROM events e \
                       WHERE e.state = 'pending' AND e.tenant_id > waiting.tenant_id) \
               FROM waiting WHERE waiting.tenant_id IS NOT NULL) \
             SELECT tenant_id, id FROM ( \
               SELECT e.tenant_id, e.id, e.received_at, \
                      ROW_NUMBER() OVER (PARTITION BY e.tenant_id ORDER BY e.received_at, e.id) AS turn \
               FROM waiting w JOIN events e ON e.id IN ( \
                 SELECT p.id FROM events p WHERE p.state = 'pending' AND p.tenant_id = w.tenant_id \
                 AND p.received_at <= $1 AND (p.lease_until IS NULL OR p.lease_until < $2) \
                 ORDER BY p.received_at LIMIT $3)) AS pending \
             ORDER BY turn, received_at LIMIT $3",
        )
        .bind(received_before)
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(tenant_and_id).collect()
    }

    /// The entity's latest data, as the engine last stored it.
    pub async fn entity(
        &self,
        tenant_id: Uuid,
        entity_type: &str,
        entity_id: &str,
    ) -> StoreResult<Option<Value>> {
        let row = sqlx::query(
            "SELECT data FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
        )
        .bind(tenant_id.to_string())
        .bind(entity_type)
        .bind(entity_id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.map(|r| json(&Columns::of(&r).get::<String>("data")?, "entity data"))
            .transpose()
    }
}

/// Marks a pending event processed with what matching found; false when it was not pending (another
/// worker got there first).
pub(crate) async fn finish_event(tx: &mut Tx, id: Uuid, outcome: &Value) -> StoreResult<bool> {
    // The state test is a CASE (see `pending_event`).
    let done = sqlx::query(
        "UPDATE events SET state = 'processed', lease_until = NULL, outcome = $1 \
         WHERE id = $2 AND CASE state WHEN 'pending' THEN TRUE ELSE FALSE END",
    )
    .bind(outcome.to_string())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// The entity's data and status inside a transaction.
pub(crate) async fn entity_for_update(
    tx: &mut Tx,
    tenant_id: Uuid,
    entity_type: &str,
    entity_id: &str,
) -> StoreResult<Option<Map<String, Value>>> {
    let row = sqlx::query(
        "SELECT data FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
    )
    .bind(tenant_id.to_string())
    .bind(entity_type)
    .bind(entity_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    match row {
        Some(r) => match json(&Columns::of(&r).get::<String>("data")?, "entity data")? {
            Value::Object(map) => Ok(Some(map)),
            _ => Ok(Some(Map::new())),
        },
        None => Ok(None),
    }
}
