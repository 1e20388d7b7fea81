//! Configured store integrations. Every query takes the tenant id, except [`Store::inbound_integration`]:
//! a store's webhook carries no bearer key, so the integration id in its URL is what names the
//! tenant (and the provider's signature, checked by the caller, is what authenticates it).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::row::Columns;
use super::{Backend, Store, StoreError, StoreResult, from_ms, now_ms};

/// `status` of an integration that accepts inbound webhooks.
pub const INTEGRATION_ACTIVE: &str = "active";
/// `status` of an integration whose inbound webhooks are refused (credentials kept).
pub const INTEGRATION_DISABLED: &str = "disabled";

/// An integration as stored. `credentials` is the sealed (`enc:v2:…`) JSON document, bound to
/// this integration's id.
#[derive(Clone)]
pub struct IntegrationRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub provider: String,
    pub store_url: Option<String>,
    pub status: String,
    pub credentials: String,
    pub settings: Value,
    pub connected_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for IntegrationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Sealed credentials are harmless, but logs have no use for them either.
        f.debug_struct("IntegrationRecord")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("provider", &self.provider)
            .field("store_url", &self.store_url)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl IntegrationRecord {
    pub fn is_active(&self) -> bool {
        self.status == INTEGRATION_ACTIVE
    }
}

/// What configuring writes.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    /// Chosen by the caller for a new integration: the credentials are sealed under it before
    /// the row exists.
    pub id: Uuid,
    pub provider: String,
    pub store_url: Option<String>,
    /// Already sealed under the master key.
    pub credentials: String,
    pub settings: Value,
}

/// What [`Store::configure_integration`] did.
#[derive(Debug)]
pub enum ConfiguredIntegration {
    /// A new integration, under the id the caller chose.
    Created(IntegrationRecord),
    /// The tenant's disabled integration of this provider and store, active again under its id.
    Reenabled(IntegrationRecord),
    /// The tenant has an active integration of this provider and store: nothing was written.
    AlreadyActive,
}

const COLUMNS: &str =
    "id, tenant_id, provider, store_url, status, credentials, settings, connected_at, disabled_at";

fn decode(row: &AnyRow) -> StoreResult<IntegrationRecord> {
    let row = Columns::of(row);
    let settings: String = row.get("settings")?;
    Ok(IntegrationRecord {
        id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        provider: row.get("provider")?,
        store_url: row.get("store_url")?,
        status: row.get("status")?,
        credentials: row.get("credentials")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("integration settings: {e}")))?,
        connected_at: row.time("connected_at")?,
        disabled_at: row.opt_time("disabled_at")?,
    })
}

impl Store {
    /// Configures an integration: a new active one under `new.id`; or, when the tenant has a
    /// disabled integration of the same provider and store (and no active one), that integration
    /// active again under its own id (so its inbound URL is unchanged), with `reseal(its id)` as
    /// its credentials and `new.settings`. Providers without a store (`store_url` NULL) always
    /// get a new integration.
    pub async fn configure_integration(
        &self,
        tenant_id: Uuid,
        new: &NewIntegration,
        reseal: impl FnOnce(Uuid) -> String + Send,
    ) -> StoreResult<ConfiguredIntegration> {
        let now = now_ms();
        let tenant = tenant_id.to_string();
        let settings = new.settings.to_string();
        let mut tx = self.write_tx().await?;
        // The check and the write must not interleave with another configure of the same store.
        // SQLite's write transaction (BEGIN IMMEDIATE) already serializes writers; on PostgreSQL
        // the tenant's row lock serializes configures of one tenant without a table lock.
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
                .bind(&tenant)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        if let Some(store_url) = &new.store_url {
            // Active first, then the newest disabled one (ids are UUID v7: time-ordered).
            let existing = sqlx::query(
                "SELECT id, status FROM integrations WHERE tenant_id = $1 AND provider = $2 \
                 AND store_url = $3 AND status IN ($4, $5) \
                 ORDER BY CASE WHEN status = $4 THEN 0 ELSE 1 END, id DESC LIMIT 1",
            )
            .bind(&tenant)
            .bind(&new.provider)
            .bind(store_url)
            .bind(INTEGRATION_ACTIVE)
            .bind(INTEGRATION_DISABLED)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            if let Some(row) = existing {
                let row = Columns::of(&row);
                let id = row.uuid("id")?;
                if row.get::<String>("status")? == INTEGRATION_ACTIVE {
                    return Ok(ConfiguredIntegration::AlreadyActive);
                }
                let credentials = reseal(id);
                sqlx::query(
                    "UPDATE integrations SET status = $1, credentials = $2, settings = $3, \
                     connected_at = $4, disabled_at = NULL WHERE id = $5 AND tenant_id = $6",
                )
                .bind(INTEGRATION_ACTIVE)
                .bind(&credentials)
                .bind(&settings)
                .bind(now)
                .bind(id.to_string())
                .bind(&tenant)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                return Ok(ConfiguredIntegration::Reenabled(IntegrationRecord {
                    id,
                    tenant_id,
                    provider: new.provider.clone(),
                    store_url: new.store_url.clone(),
                    status: INTEGRATION_ACTIVE.to_owned(),
                    credentials,
                    settings: new.settings.clone(),
                    connected_at: from_ms(now),
                    disabled_at: None,
                }));
            }
        }
        sqlx::query(
            "INSERT INTO integrations (id, tenant_id, provider, store_url, status, credentials, \
             settings, connected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new.id.to_string())
        .bind(&tenant)
        .bind(&new.provider)
        .bind(new.store_url.clone())
        .bind(INTEGRATION_ACTIVE)
        .bind(&new.credentials)
        .bind(&settings)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(ConfiguredIntegration::Created(IntegrationRecord {
            id: new.id,
            tenant_id,
            provider: new.provider.clone(),
            store_url: new.store_url.clone(),
            status: INTEGRATION_ACTIVE.to_owned(),
            credentials: new.credentials.clone(),
            settings: new.settings.clone(),
            connected_at: from_ms(now),
            disabled_at: None,
        }))
    }

    /// One of the tenant's integrations.
    pub async fn integration(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<IntegrationRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM integrations WHERE id = $1 AND tenant_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(tenant_id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(decode).transpose()
    }

    /// One page of the tenant's integrations, oldest first, after the cursor id.
    pub async fn list_integrations(
        &self,
        tenant_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<IntegrationRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM integrations WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id.to_string())
            .bind(after.map(|u| u.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(decode).collect()
    }

    /// Marks an integration disabled (idempotent: a disabled one keeps its first `disabled_at`).
    pub async fn disable_integration(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<IntegrationRecord>> {
        let updated = sqlx::query(
            "UPDATE integrations SET status = $1, disabled_at = COALESCE(disabled_at, $2) \
             WHERE id = $3 AND tenant_id = $4",
        )
        .bind(INTEGRATION_DISABLED)
        .bind(now_ms())
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .execute(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        self.integration(tenant_id, id).await
    }

    /// Deletes an integration and its credentials for good (and its delivery digests); false when
    /// there was none.
    pub async fn delete_integration(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query("DELETE FROM integrations WHERE id = $1 AND tenant_id = $2")
            .bind(id.to_string())
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        if deleted.rows_affected() > 0 {
            sqlx::query("DELETE FROM inbound_digests WHERE integration_id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Claims a delivery's digest for `integration`: `Ok(None)` when it was new (and is now
    /// recorded with `event_keys`), `Ok(Some(keys))` with the first delivery's event ids when the
    /// same topic and body arrived within the replay window. Digests older than the window are
    /// pruned in the same transaction, so the table holds at most one window of deliveries.
    pub async fn claim_delivery_digest(
        &self,
        integration: Uuid,
        digest: &str,
        event_keys: &[String],
        window: std::time::Duration,
    ) -> StoreResult<Option<Vec<String>>> {
        let now = now_ms();
        let oldest = now - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let id = integration.to_string();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM inbound_digests WHERE integration_id = $1 AND received_at < $2")
            .bind(&id)
            .bind(oldest)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        let keys = serde_json::to_string(event_keys).unwrap_or_else(|_| "[]".to_owned());
        let inserted = sqlx::query(
            "INSERT INTO inbound_digests (integration_id, digest, event_keys, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (integration_id, digest) DO NOTHING",
        )
        .bind(&id)
        .bind(digest)
        .bind(&keys)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let earlier = if inserted.rows_affected() == 0 {
            let row = sqlx::query(
                "SELECT event_keys FROM inbound_digests WHERE integration_id = $1 AND digest = $2",
            )
            .bind(&id)
            .bind(digest)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            let text: String = Columns::of(&row).get("event_keys")?;
            Some(serde_json::from_str(&text).unwrap_or_default())
        } else {
            None
        };
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(earlier)
    }

    /// Forgets a digest claimed for a delivery that then failed to be ingested, so the store's
    /// retry of it is not taken for a replay.
    pub async fn release_delivery_digest(
        &self,
        integration: Uuid,
        digest: &str,
    ) -> StoreResult<()> {
        sqlx::query("DELETE FROM inbound_digests WHERE integration_id = $1 AND digest = $2")
            .bind(integration.to_string())
            .bind(digest)
            .execute(self.writer())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// The integration an inbound webhook URL names, whatever its tenant: the one lookup without a
    /// tenant id, because the URL is all a store's delivery carries.
    pub async fn inbound_integration(&self, id: Uuid) -> StoreResult<Option<IntegrationRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM integrations WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(decode).transpose()
    }
}
