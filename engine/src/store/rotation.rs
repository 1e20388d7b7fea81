//! Re-encrypting every secret at rest: `rotate-master-key` (old key → new key) and, once per
//! database, binding the secrets written before record binding (`enc:v1:`, tenant-only associated
//! data) to their records (`enc:v2:`). Each is one transaction, so the database is never half
//! under one key or scheme and half under the other.

use serde_json::Value;
use uuid::Uuid;

use super::row::Columns;
use super::tenants::parse_uuid;
use super::{Store, StoreError};
use crate::secrets::{MasterKey, SecretScope};

/// The `meta` row that records that every secret is bound to its record (the data migration of
/// [`Store::bind_secrets_to_records`] ran).
const BOUND_MARKER: &str = "secrets_bound_to_records";

/// How many secrets were re-encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotated {
    /// Integrations whose credentials document was re-encrypted.
    pub integrations: usize,
    /// Sealed values inside workflow versions (webhook secrets and any other secret param).
    pub workflow_secrets: usize,
}

/// Why a re-encryption did not happen; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("{0} does not decrypt with the current master key; nothing was changed")]
    Undecryptable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Re-encrypts integration credentials, the secrets inside every workflow version and the
    /// master key check from `old` to `new`. Run it with no server using the database: a server
    /// still holding the old key would write secrets the new key cannot read.
    pub async fn rotate_master_key(
        &self,
        old: &MasterKey,
        new: &MasterKey,
    ) -> Result<Rotated, RotateError> {
        self.reseal_everything(old, new).await
    }

    /// The one-time data migration to record-bound secrets: when the database has not been
    /// marked yet, re-encrypts every secret under the same key with its record's scope (values
    /// already bound are re-sealed too, which is harmless) and marks it, in one transaction. Runs
    /// at every start before anything reads a secret; after the first it is one `SELECT`.
    /// `None` when there was nothing to do.
    pub async fn bind_secrets_to_records(
        &self,
        key: &MasterKey,
    ) -> Result<Option<Rotated>, RotateError> {
        let marked = sqlx::query("SELECT value FROM meta WHERE name = $1")
            .bind(BOUND_MARKER)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        if marked.is_some() {
            return Ok(None);
        }
        self.reseal_everything(key, key).await.map(Some)
    }

    /// Every secret from `old` (either scheme) to `new` (bound to its record), and the marker.
    async fn reseal_everything(
        &self,
        old: &MasterKey,
        new: &MasterKey,
    ) -> Result<Rotated, RotateError> {
        let mut rotated = Rotated::default();
        let mut tx = self.write_tx().await?;

        let rows = sqlx::query("SELECT id, tenant_id, credentials FROM integrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        for row in &rows {
            let row = Columns::of(row);
            let id: String = row.get("id")?;
            let tenant: String = row.get("tenant_id")?;
            let sealed: String = row.get("credentials")?;
            let scope = SecretScope::integration(parse_uuid(&tenant)?, parse_uuid(&id)?);
            let plain = old
                .decrypt_any_scheme(&sealed, &scope)
                .map_err(|_| RotateError::Undecryptable(format!("integration {id}")))?;
            sqlx::query("UPDATE integrations SET credentials = $1 WHERE id = $2")
                .bind(new.encrypt(&plain, &scope))
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            rotated.integrations += 1;
        }

        let rows =
            sqlx::query("SELECT workflow_id, version, tenant_id, spec FROM workflow_versions")
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        for row in &rows {
            let row = Columns::of(row);
            let workflow: String = row.get("workflow_id")?;
            let version: i64 = row.get("version")?;
            let tenant: String = row.get("tenant_id")?;
            let text: String = row.get("spec")?;
            let mut spec: Value = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("workflow spec: {e}")))?;
            let scope = SecretScope::workflow(parse_uuid(&tenant)?, parse_uuid(&workflow)?);
            let what = || format!("a secret of workflow {workflow} version {version}");
            let count = reseal(&mut spec, old, new, &scope)
                .map_err(|_| RotateError::Undecryptable(what()))?;
            if count == 0 {
                continue;
            }
            sqlx::query(
                "UPDATE workflow_versions SET spec = $1 WHERE workflow_id = $2 AND version = $3",
            )
            .bind(spec.to_string())
            .bind(&workflow)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            rotated.workflow_secrets += count;
        }

        let check_scope = SecretScope::meta("master_key_check");
        let check = sqlx::query("SELECT value FROM meta WHERE name = 'master_key_check'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        if let Some(row) = check {
            let sealed: String = Columns::of(&row).get("value")?;
            let plain = old
                .decrypt_any_scheme(&sealed, &check_scope)
                .map_err(|_| RotateError::Undecryptable("the master key check".to_owned()))?;
            sqlx::query("UPDATE meta SET value = $1 WHERE name = 'master_key_check'")
                .bind(new.encrypt(&plain, &check_scope))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }

        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE \
             SET value = excluded.value",
        )
        .bind(BOUND_MARKER)
        .bind(Uuid::now_v7().to_string())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;

        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(rotated)
    }
}

/// Re-encrypts every sealed string inside `value`; returns how many. Secrets sit in step params
/// whose names only the action types know, so the whole document is walked.
fn reseal(
    value: &mut Value,
    old: &MasterKey,
    new: &MasterKey,
    scope: &SecretScope,
) -> Result<usize, crate::secrets::SecretError> {
    match value {
        Value::String(text) if MasterKey::is_encrypted(text) => {
            let plain = old.decrypt_any_scheme(text, scope)?;
            *text = new.encrypt(&plain, scope);
            Ok(1)
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|item| reseal(item, old, new, scope))
            .sum(),
        Value::Object(map) => map
            .values_mut()
            .map(|item| reseal(item, old, new, scope))
            .sum(),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ConfiguredIntegration, NewIntegration, WorkflowWrite};

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64()).expect("key")
    }

    #[test]
    fn reseal_finds_nested_secrets() {
        let (old, new) = (key(), key());
        let scope = SecretScope::workflow(Uuid::now_v7(), Uuid::now_v7());
        let mut spec = serde_json::json!({
            "name": "n",
            "actions": [{"type": "webhook", "url": "http://x", "secret": old.encrypt("whsec_a", &scope)},
                        {"type": "send_email", "subject": "hi"}],
        });
        assert_eq!(reseal(&mut spec, &old, &new, &scope).expect("reseals"), 1);
        let sealed = spec["actions"][0]["secret"].as_str().expect("secret");
        assert_eq!(new.decrypt(sealed, &scope).expect("new key"), "whsec_a");
        assert!(old.decrypt(sealed, &scope).is_err());
        assert!(
            reseal(&mut spec, &old, &new, &scope).is_err(),
            "already under the new key"
        );
    }

    /// A database as an earlier version left it (tenant-only `enc:v1:` values, no marker) is
    /// bound to its records once; the engine's reads then work, and a second start does nothing.
    #[tokio::test]
    async fn old_format_secrets_are_bound_to_their_records_once() {
        let dir = std::env::temp_dir().join(format!("sy-bind-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("dir");
        let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
        let store = Store::connect(&url, 2).await.expect("connect");
        store.migrate().await.expect("migrate");
        let key = key();
        let tenant = store.create_tenant("Acme").await.expect("tenant").tenant_id;
        let legacy = |plain: &str, context: &str| key.encrypt_legacy(plain, context);

        sqlx::query("INSERT INTO meta (name, value) VALUES ('master_key_check', $1)")
            .bind(legacy("switchyard master key check", "meta"))
            .execute(store.writer())
            .await
            .expect("old key check");
        store
            .check_master_key(&key)
            .await
            .expect("old check accepted");
        let credentials = legacy(r#"{"apiKey":"shpat_x"}"#, &tenant.to_string());
        let configured = store
            .configure_integration(
                tenant,
                &NewIntegration {
                    id: Uuid::now_v7(),
                    provider: "shopify".to_owned(),
                    store_url: Some("https://shop.example.com".to_owned()),
                    credentials: credentials.clone(),
                    settings: serde_json::json!({}),
                },
                |_| credentials.clone(),
            )
            .await
            .expect("insert");
        let ConfiguredIntegration::Created(integration) = configured else {
            panic!("a fresh tenant's first integration is new: {configured:?}");
        };
        let spec = serde_json::from_value(serde_json::json!({
            "name": "hook", "entityType": "Order", "trigger": "order_created",
            "actions": [{"type": "webhook", "url": "https://x.example",
                         "secret": legacy("whsec_old", &tenant.to_string())}],
        }))
        .expect("spec");
        let workflow = store
            .insert_workflow(
                tenant,
                &WorkflowWrite {
                    spec,
                    is_active: Some(true),
                    is_managed: false,
                    integration_id: None,
                },
            )
            .await
            .expect("workflow");

        let done = store
            .bind_secrets_to_records(&key)
            .await
            .expect("migration")
            .expect("ran");
        assert_eq!(done.integrations, 1);
        assert_eq!(done.workflow_secrets, 1);

        let stored = store
            .inbound_integration(integration.id)
            .await
            .expect("read")
            .expect("integration");
        assert!(!MasterKey::is_legacy(&stored.credentials));
        let scope = SecretScope::integration(tenant, integration.id);
        assert_eq!(
            key.decrypt(&stored.credentials, &scope).expect("bound"),
            r#"{"apiKey":"shpat_x"}"#
        );
        let stored = store
            .workflow(tenant, workflow.id)
            .await
            .expect("read")
            .expect("workflow");
        let secret = stored.spec.actions[0].params["secret"]
            .as_str()
            .expect("secret");
        assert_eq!(
            key.decrypt(secret, &SecretScope::workflow(tenant, workflow.id))
                .expect("bound"),
            "whsec_old"
        );
        store
            .check_master_key(&key)
            .await
            .expect("check still fine");
        assert!(store.check_master_key(&self::key()).await.is_err());

        assert!(
            store
                .bind_secrets_to_records(&key)
                .await
                .expect("second start")
                .is_none(),
            "runs once"
        );
        // Rotation still works on bound values.
        let new = self::key();
        let rotated = store.rotate_master_key(&key, &new).await.expect("rotate");
        assert_eq!((rotated.integrations, rotated.workflow_secrets), (1, 1));
        let stored = store
            .inbound_integration(integration.id)
            .await
            .expect("read")
            .expect("integration");
        assert!(new.decrypt(&stored.credentials, &scope).is_ok());
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
