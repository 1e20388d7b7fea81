//! Events and the entity store. Ingesting an event stores it (idempotent on the tenant's
//! `eventId`), snapshots the entity's previous data and records the new data, in one transaction.

use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;
use switchyard_schemas::EntityType;
use uuid::Uuid;

use super::tenants::parse_uuid;
use super::{Store, StoreError, StoreResult, from_ms, now_ms};

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
}

const EVENT_COLUMNS: &str = "id, tenant_id, event_key, entity_type, entity_id, trig, data, previous, \
     occurred_at, received_at, causation_id, depth, chain, state, outcome";

fn json(text: &str, what: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn decode_event(row: &AnyRow) -> StoreResult<EventRecord> {
    let previous: Option<String> = row.try_get(7)?;
    let causation: Option<String> = row.try_get(10)?;
    let chain: String = row.try_get(12)?;
    let outcome: Option<String> = row.try_get(14)?;
    Ok(EventRecord {
        id: parse_uuid(&row.try_get::<String, _>(0)?)?,
        tenant_id: parse_uuid(&row.try_get::<String, _>(1)?)?,
        event_key: row.try_get(2)?,
        entity_type: row.try_get(3)?,
        entity_id: row.try_get(4)?,
        trigger: row.try_get(5)?,
        data: json(&row.try_get::<String, _>(6)?, "event data")?,
        previous: previous
            .as_deref()
            .map(|p| json(p, "event previous"))
            .transpose()?,
        occurred_at: from_ms(row.try_get(8)?),
        received_at: from_ms(row.try_get(9)?),
        causation_id: causation.as_deref().map(parse_uuid).transpose()?,
        depth: row.try_get(11)?,
        chain: serde_json::from_str(&chain).unwrap_or_default(),
        state: row.try_get(13)?,
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

    let stored: Option<String> = sqlx::query(
        "SELECT data FROM entities WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
    )
    .bind(&tenant)
    .bind(event.entity_type.as_str())
    .bind(&event.entity_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?
    .map(|r| r.try_get(0))
    .transpose()?;
    let previous = match &event.previous {
        Some(p) => Some(Value::Object(p.clone()).to_string()),
        None => stored,
    };

    let inserted = sqlx::query(
        "INSERT INTO events (id, tenant_id, event_key, entity_type, entity_id, trig, data, previous, \
         occurred_at, received_at, causation_id, depth, chain, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'pending') \
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
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;

    if inserted.rows_affected() == 0 {
        let existing: String =
            sqlx::query("SELECT id FROM events WHERE tenant_id = $1 AND event_key = $2")
                .bind(&tenant)
                .bind(&key)
                .fetch_one(&mut **tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .try_get(0)?;
        return Ok(Ingested {
            id: parse_uuid(&existing)?,
            event_key: key,
            duplicate: true,
        });
    }

    if event.update_entity {
        let status = event.data.get("status").and_then(|s| match s {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        });
        sqlx::query(
            "INSERT INTO entities (tenant_id, entity_type, entity_id, data, status, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, entity_type, entity_id) \
             DO UPDATE SET data = excluded.data, status = excluded.status, updated_at = excluded.updated_at",
        )
        .bind(&tenant)
        .bind(event.entity_type.as_str())
        .bind(&event.entity_id)
        .bind(Value::Object(event.data.clone()).to_string())
        .bind(status)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    }
    Ok(Ingested {
        id,
        event_key: key,
        duplicate: false,
    })
}

impl Store {
    /// Stores an event and updates the entity store, in one transaction.
    pub async fn ingest_event(&self, event: &NewEvent) -> StoreResult<Ingested> {
        let mut tx = self.write_tx().await?;
        let ingested = insert_event(&mut tx, event).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(ingested)
    }

    /// Stores several events in one transaction (group commit of concurrent API requests).
    pub async fn ingest_events(&self, events: &[NewEvent]) -> StoreResult<Vec<Ingested>> {
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            out.push(insert_event(&mut tx, event).await?);
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(out)
    }

    pub async fn event(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<EventRecord>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 AND tenant_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(tenant_id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(decode_event).transpose()
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
        row.as_ref().map(decode_event).transpose()
    }

    /// The tenant's events, newest first, optionally of one entity type and trigger.
    pub async fn list_events(
        &self,
        tenant_id: Uuid,
        filter: Option<(&str, &str)>,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1");
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
        query = query.bind(i64::from(limit));
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(decode_event).collect()
    }

    /// The event, if it still waits to be matched.
    pub async fn pending_event(&self, id: Uuid) -> StoreResult<Option<EventRecord>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 AND state = 'pending'");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(decode_event).transpose()
    }

    /// Pending events nobody holds, oldest first (the SQLite dispatcher's queue and the sweeper's
    /// safety net).
    pub async fn pending_events(&self, received_before: i64, limit: u32) -> StoreResult<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT id FROM events WHERE state = 'pending' AND received_at <= $1 \
             AND (lease_until IS NULL OR lease_until < $2) ORDER BY received_at LIMIT $3",
        )
        .bind(received_before)
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| parse_uuid(&r.try_get::<String, _>(0)?))
            .collect()
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
        row.map(|r| json(&r.try_get::<String, _>(0)?, "entity data"))
            .transpose()
    }
}

/// Marks a pending event processed with what matching found; false when it was not pending (another
/// worker got there first).
pub(crate) async fn finish_event(tx: &mut Tx, id: Uuid, outcome: &Value) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE events SET state = 'processed', lease_until = NULL, outcome = $1 \
         WHERE id = $2 AND state = 'pending'",
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
        Some(r) => match json(&r.try_get::<String, _>(0)?, "entity data")? {
            Value::Object(map) => Ok(Some(map)),
            _ => Ok(Some(Map::new())),
        },
        None => Ok(None),
    }
}
