//! Workflows and their versions. Every update writes a new version row and moves the workflow's
//! pointer; executions keep the version they started with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use switchyard_schemas::{ActionSpec, CancelOn, Concurrency, Debounce, EntityType, Schedule};
use uuid::Uuid;

use super::row::Columns;
use super::{Store, StoreError, StoreResult, from_ms, now_ms};

/// The validated, storable part of a workflow; secrets inside `actions` are encrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    pub name: String,
    pub entity_type: EntityType,
    pub trigger: String,
    pub actions: Vec<ActionSpec>,
    #[serde(default)]
    pub conditions: Map<String, Value>,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Debounce>,
    /// Trigger codes (not guids) and key templates; `key` is `None` for the entity key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel_on: Vec<CancelOn>,
}

/// A workflow with its current version's spec.
#[derive(Debug, Clone)]
pub struct StoredWorkflow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub is_active: bool,
    pub is_managed: bool,
    /// The integration that installed this workflow (managed workflows only).
    pub integration_id: Option<Uuid>,
    pub version: i64,
    pub spec: WorkflowSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a create or update writes.
#[derive(Debug, Clone)]
pub struct WorkflowWrite {
    pub spec: WorkflowSpec,
    /// `None` (the body had no `isActive`): a new workflow is active, an updated one keeps the
    /// state it has when the update commits.
    pub is_active: Option<bool>,
    pub is_managed: bool,
    /// The integration installing it, for a managed workflow; `None` for the API's own.
    pub integration_id: Option<Uuid>,
}

/// Why an update or delete did not apply.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowChangeError {
    #[error("workflow not found")]
    NotFound,
    #[error("workflow is at version {current}, not {expected}")]
    VersionMismatch { current: i64, expected: i64 },
    #[error("workflow is managed by an integration and cannot be changed through the API")]
    Managed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

const SELECT: &str = "SELECT w.id, w.tenant_id, w.is_active, w.is_managed, w.integration_id, \
     w.current_version, v.spec, w.created_at, w.updated_at \
     FROM workflows w JOIN workflow_versions v \
       ON v.workflow_id = w.id AND v.version = w.current_version";

fn decode(row: &AnyRow) -> StoreResult<StoredWorkflow> {
    let row = Columns::of(row);
    let spec: String = row.get("spec")?;
    Ok(StoredWorkflow {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        is_active: row.flag("is_active")?,
        is_managed: row.flag("is_managed")?,
        integration_id: row.opt_uuid("integration_id")?,
        version: row.get("current_version")?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("workflow spec: {e}")))?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn spec_json(spec: &WorkflowSpec) -> StoreResult<String> {
    serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    pub async fn insert_workflow(
        &self,
        tenant_id: Uuid,
        write: &WorkflowWrite,
    ) -> StoreResult<StoredWorkflow> {
        self.insert_workflow_with_id(tenant_id, Uuid::now_v7(), write)
            .await
    }

    /// Inserts a workflow under an id chosen before: its secrets are sealed for that id
    /// (`SecretScope::workflow`) before the row exists.
    pub async fn insert_workflow_with_id(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        write: &WorkflowWrite,
    ) -> StoreResult<StoredWorkflow> {
        let now = now_ms();
        let is_active = write.is_active.unwrap_or(true);
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO workflows (id, tenant_id, entity_type, trigger_code, name, is_active, \
             is_managed, integration_id, current_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)",
        )
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(write.spec.entity_type.as_str())
        .bind(&write.spec.trigger)
        .bind(&write.spec.name)
        .bind(i64::from(is_active))
        .bind(i64::from(write.is_managed))
        .bind(write.integration_id.map(|id| id.to_string()))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        insert_version(&mut tx, tenant_id, id, 1, &write.spec, now).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(StoredWorkflow {
            id,
            tenant_id,
            is_active,
            is_managed: write.is_managed,
            integration_id: write.integration_id,
            version: 1,
            spec: write.spec.clone(),
            created_at: from_ms(now),
            updated_at: from_ms(now),
        })
    }

    /// Writes a new version. `expected_version` is the client's `If-Match`, when it sent one.
    pub async fn update_workflow(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        expected_version: Option<i64>,
        write: &WorkflowWrite,
    ) -> Result<StoredWorkflow, WorkflowChangeError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        // Read the current row inside the transaction, then update guarded by the version read:
        // a concurrent update makes the guard miss and is reported as a conflict.
        let current = current_row(&mut tx, tenant_id, id)
            .await?
            .ok_or(WorkflowChangeError::NotFound)?;
        let (version, managed, created_at) =
            (current.version, current.is_managed, current.created_at);
        // Read in this transaction, so a toggle committed before this update is kept.
        let is_active = write.is_active.unwrap_or(current.is_active);
        if managed && !write.is_managed {
            return Err(WorkflowChangeError::Managed);
        }
        if let Some(expected) = expected_version
            && expected != version
        {
            return Err(WorkflowChangeError::VersionMismatch {
                current: version,
                expected,
            });
        }
        let next = version + 1;
        let updated = sqlx::query(
            "UPDATE workflows SET current_version = $1, name = $2, entity_type = $3, \
             trigger_code = $4, is_active = $5, updated_at = $6 \
             WHERE id = $7 AND tenant_id = $8 AND current_version = $9 AND deleted_at IS NULL",
        )
        .bind(next)
        .bind(&write.spec.name)
        .bind(write.spec.entity_type.as_str())
        .bind(&write.spec.trigger)
        .bind(i64::from(is_active))
        .bind(now)
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if updated.rows_affected() != 1 {
            return Err(WorkflowChangeError::VersionMismatch {
                current: version + 1,
                expected: expected_version.unwrap_or(version),
            });
        }
        insert_version(&mut tx, tenant_id, id, next, &write.spec, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => WorkflowChangeError::VersionMismatch {
                    current: next,
                    expected: expected_version.unwrap_or(version),
                },
                other => other.into(),
            })?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(StoredWorkflow {
            id,
            tenant_id,
            is_active,
            is_managed: managed,
            integration_id: current.integration_id,
            version: next,
            spec: write.spec.clone(),
            created_at: from_ms(created_at),
            updated_at: from_ms(now),
        })
    }

    pub async fn workflow(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<StoredWorkflow>> {
        let sql = format!("{SELECT} WHERE w.id = $1 AND w.tenant_id = $2 AND w.deleted_at IS NULL");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(tenant_id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(decode).transpose()
    }

    /// One page of a tenant's workflows of an entity type, oldest first, after the cursor id,
    /// within a size budget on their specs (see [`super::within_budget`]); the flag says whether
    /// the budget cut the page short.
    pub async fn list_workflows(
        &self,
        tenant_id: Uuid,
        entity_type: EntityType,
        include_managed: bool,
        after: Option<Uuid>,
        limit: u32,
        max_chars: i64,
    ) -> StoreResult<(Vec<StoredWorkflow>, bool)> {
        let sql = format!(
            "SELECT w.id AS id, LENGTH(v.spec) AS size FROM workflows w JOIN workflow_versions v \
               ON v.workflow_id = w.id AND v.version = w.current_version \
             WHERE w.tenant_id = $1 AND w.entity_type = $2 AND w.deleted_at IS NULL \
             AND w.id > $3 {} ORDER BY w.id LIMIT $4",
            if include_managed {
                ""
            } else {
                "AND w.is_managed = 0"
            }
        );
        let sizes = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id.to_string())
            .bind(entity_type.as_str())
            .bind(after.map(|u| u.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        let (kept, cut) = super::within_budget(&sizes, max_chars)?;
        if kept.is_empty() {
            return Ok((Vec::new(), false));
        }
        let sql = format!(
            "{SELECT} WHERE w.tenant_id = $1 AND w.deleted_at IS NULL AND w.id IN ({}) ORDER BY w.id",
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
        let workflows = rows.iter().map(decode).collect::<StoreResult<Vec<_>>>()?;
        Ok((workflows, cut))
    }

    /// Flips `is_active` as a new version (a copy of the current spec), so the version and
    /// therefore the ETag move: a client holding the old ETag gets a conflict, as after any other
    /// change. `expected_version` is the client's `If-Match`, when it sent one. Returns the
    /// workflow as it now is.
    /// `set_to` switches it on or off whatever its state (nothing is written when it already
    /// is); `None` flips it. A managed workflow is only switched with its integration
    /// (`allow_managed`).
    pub async fn toggle_workflow(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        expected_version: Option<i64>,
        set_to: Option<bool>,
        allow_managed: bool,
    ) -> Result<StoredWorkflow, WorkflowChangeError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let current = current_row(&mut tx, tenant_id, id)
            .await?
            .ok_or(WorkflowChangeError::NotFound)?;
        if current.is_managed && !allow_managed {
            return Err(WorkflowChangeError::Managed);
        }
        if set_to == Some(current.is_active) {
            drop(tx);
            return self
                .workflow(tenant_id, id)
                .await?
                .ok_or(WorkflowChangeError::NotFound);
        }
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(WorkflowChangeError::VersionMismatch {
                current: current.version,
                expected,
            });
        }
        let next = current.version + 1;
        let copied = sqlx::query(
            "INSERT INTO workflow_versions (workflow_id, version, tenant_id, spec, created_at) \
             SELECT workflow_id, $1, tenant_id, spec, $2 FROM workflow_versions \
             WHERE workflow_id = $3 AND version = $4 AND tenant_id = $5",
        )
        .bind(next)
        .bind(now)
        .bind(id.to_string())
        .bind(current.version)
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from_sqlx(e) {
            // A concurrent change wrote this version first.
            StoreError::Conflict(_) => WorkflowChangeError::VersionMismatch {
                current: next,
                expected: expected_version.unwrap_or(current.version),
            },
            other => other.into(),
        })?;
        if copied.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!(
                "workflow {id} has no row for its current version {}",
                current.version
            ))
            .into());
        }
        let updated = sqlx::query(
            "UPDATE workflows SET is_active = $1, current_version = $2, updated_at = $3 \
             WHERE id = $4 AND tenant_id = $5 AND current_version = $6 AND deleted_at IS NULL",
        )
        .bind(i64::from(!current.is_active))
        .bind(next)
        .bind(now)
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(current.version)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if updated.rows_affected() != 1 {
            return Err(WorkflowChangeError::VersionMismatch {
                current: next,
                expected: expected_version.unwrap_or(current.version),
            });
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        self.workflow(tenant_id, id)
            .await?
            .ok_or(WorkflowChangeError::NotFound)
    }

    /// Soft-deletes: versions stay for the executions that reference them.
    pub async fn delete_workflow(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        allow_managed: bool,
    ) -> Result<(), WorkflowChangeError> {
        let mut tx = self.write_tx().await?;
        let current = current_row(&mut tx, tenant_id, id)
            .await?
            .ok_or(WorkflowChangeError::NotFound)?;
        if current.is_managed && !allow_managed {
            return Err(WorkflowChangeError::Managed);
        }
        sqlx::query(
            "UPDATE workflows SET deleted_at = $1, is_active = 0 WHERE id = $2 AND tenant_id = $3",
        )
        .bind(now_ms())
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// The live workflows an integration installed (at most one so far: push tracking).
    pub async fn managed_workflows(
        &self,
        tenant_id: Uuid,
        integration_id: Uuid,
    ) -> StoreResult<Vec<StoredWorkflow>> {
        let sql = format!(
            "{SELECT} WHERE w.tenant_id = $1 AND w.integration_id = $2 AND w.deleted_at IS NULL \
             ORDER BY w.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id.to_string())
            .bind(integration_id.to_string())
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(decode).collect()
    }

    /// A specific version of a workflow (executions run on the version they started with).
    pub async fn workflow_version(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        version: i64,
    ) -> StoreResult<Option<WorkflowSpec>> {
        let row = sqlx::query(
            "SELECT spec FROM workflow_versions WHERE workflow_id = $1 AND version = $2 AND tenant_id = $3",
        )
        .bind(id.to_string())
        .bind(version)
        .bind(tenant_id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.map(|r| {
            let spec: String = Columns::of(&r).get("spec")?;
            serde_json::from_str(&spec)
                .map_err(|e| StoreError::Corrupt(format!("workflow spec: {e}")))
        })
        .transpose()
    }
}

/// What a change of a live workflow reads first, inside its transaction.
struct CurrentRow {
    version: i64,
    is_active: bool,
    is_managed: bool,
    integration_id: Option<Uuid>,
    created_at: i64,
}

/// The current state of a live workflow of the tenant.
async fn current_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: Uuid,
    id: Uuid,
) -> StoreResult<Option<CurrentRow>> {
    let row = sqlx::query(
        "SELECT current_version, is_active, is_managed, integration_id, created_at FROM workflows \
         WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
    )
    .bind(id.to_string())
    .bind(tenant_id.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    row.map(|r| {
        let r = Columns::of(&r);
        Ok(CurrentRow {
            version: r.get::<i64>("current_version")?,
            is_active: r.flag("is_active")?,
            is_managed: r.flag("is_managed")?,
            integration_id: r.opt_uuid("integration_id")?,
            created_at: r.get::<i64>("created_at")?,
        })
    })
    .transpose()
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: Uuid,
    id: Uuid,
    version: i64,
    spec: &WorkflowSpec,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO workflow_versions (workflow_id, version, tenant_id, spec, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(version)
    .bind(tenant_id.to_string())
    .bind(spec_json(spec)?)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    // The workflow's `cancelOn` index: what incoming events look up (`match_candidates`).
    sqlx::query("DELETE FROM workflow_cancel_triggers WHERE tenant_id = $1 AND workflow_id = $2")
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    for entry in &spec.cancel_on {
        sqlx::query(
            "INSERT INTO workflow_cancel_triggers (tenant_id, trigger_code, workflow_id, key_template) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant_id.to_string())
        .bind(entry.trigger_id.clone())
        .bind(id.to_string())
        .bind(entry.key.clone())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    }
    Ok(())
}

impl Store {
    /// The active workflows (id, current version) of a tenant for one entity type and trigger:
    /// the matching index (`workflows_match`), so an event's cost does not grow with the tenant's
    /// workflows on other triggers.
    pub async fn active_workflows(
        &self,
        tenant_id: Uuid,
        entity_type: &str,
        trigger: &str,
    ) -> StoreResult<Vec<(Uuid, i64)>> {
        let rows = sqlx::query(
            "SELECT id, current_version FROM workflows WHERE tenant_id = $1 AND entity_type = $2 \
             AND trigger_code = $3 AND is_active = 1 AND deleted_at IS NULL",
        )
        .bind(tenant_id.to_string())
        .bind(entity_type)
        .bind(trigger)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                let r = Columns::of(r);
                Ok((r.uuid("id")?, r.get("current_version")?))
            })
            .collect()
    }

    /// What an event on `trigger` concerns, in one read: the active workflows it may start (as
    /// [`Store::active_workflows`]) and the workflows whose `cancelOn` lists it, each with that
    /// entry's key template (`workflow_cancel_triggers`, by its primary key's prefix). An event
    /// on a trigger no workflow cancels on costs no query more than matching did.
    pub async fn match_candidates(
        &self,
        tenant_id: Uuid,
        entity_type: &str,
        trigger: &str,
    ) -> StoreResult<(Vec<(Uuid, i64)>, Vec<super::CancelCandidate>)> {
        let rows = sqlx::query(
            "SELECT 'start' AS kind, id AS workflow_id, current_version, NULL AS key_template \
             FROM workflows WHERE tenant_id = $1 AND entity_type = $2 \
             AND trigger_code = $3 AND is_active = 1 AND deleted_at IS NULL \
             UNION ALL \
             SELECT 'cancel' AS kind, c.workflow_id AS workflow_id, w.current_version AS current_version, \
             c.key_template AS key_template \
             FROM workflow_cancel_triggers c JOIN workflows w ON w.id = c.workflow_id \
             WHERE c.tenant_id = $1 AND c.trigger_code = $3 AND w.tenant_id = $1 \
             AND w.deleted_at IS NULL",
        )
        .bind(tenant_id.to_string())
        .bind(entity_type)
        .bind(trigger)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let mut start = Vec::new();
        let mut cancel = Vec::new();
        for row in &rows {
            let r = Columns::of(row);
            let workflow_id = r.uuid("workflow_id")?;
            if r.get::<String>("kind")? == "cancel" {
                cancel.push(super::CancelCandidate {
                    workflow_id,
                    key_template: r.get("key_template")?,
                });
            } else {
                start.push((workflow_id, r.get("current_version")?));
            }
        }
        Ok((start, cancel))
    }

    /// (is_active, deleted) of a workflow, whatever its state.
    pub async fn workflow_state(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<(bool, bool)>> {
        let row = sqlx::query(
            "SELECT is_active, deleted_at FROM workflows WHERE id = $1 AND tenant_id = $2",
        )
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.map(|r| {
            let r = Columns::of(&r);
            Ok((
                r.flag("is_active")?,
                r.get::<Option<i64>>("deleted_at")?.is_some(),
            ))
        })
        .transpose()
    }
}
