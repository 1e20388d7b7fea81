//! Master key rotation: every secret at rest re-encrypted from the old key to the new one in one
//! transaction, so the database is never half under one key and half under the other.

use serde_json::Value;
use sqlx::Row;

use super::{Store, StoreError};
use crate::secrets::MasterKey;

/// The context the master key check is sealed under (see `check_master_key`).
const META_CONTEXT: &str = "meta";

/// How many secrets a rotation re-encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotated {
    /// Integrations whose credentials document was re-encrypted.
    pub integrations: usize,
    /// `enc:v1:` values inside workflow versions (webhook secrets and any other secret param).
    pub workflow_secrets: usize,
}

/// Why a rotation did not happen; nothing was changed.
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
        let mut rotated = Rotated::default();
        let mut tx = self.write_tx().await?;

        let rows = sqlx::query("SELECT id, tenant_id, credentials FROM integrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        for row in &rows {
            let id: String = row.try_get(0).map_err(StoreError::from)?;
            let tenant: String = row.try_get(1).map_err(StoreError::from)?;
            let sealed: String = row.try_get(2).map_err(StoreError::from)?;
            let plain = old
                .decrypt(&sealed, &tenant)
                .map_err(|_| RotateError::Undecryptable(format!("integration {id}")))?;
            sqlx::query("UPDATE integrations SET credentials = $1 WHERE id = $2")
                .bind(new.encrypt(&plain, &tenant))
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
            let workflow: String = row.try_get(0).map_err(StoreError::from)?;
            let version: i64 = row.try_get(1).map_err(StoreError::from)?;
            let tenant: String = row.try_get(2).map_err(StoreError::from)?;
            let text: String = row.try_get(3).map_err(StoreError::from)?;
            let mut spec: Value = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("workflow spec: {e}")))?;
            let what = || format!("a secret of workflow {workflow} version {version}");
            let count = reseal(&mut spec, old, new, &tenant)
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

        let check = sqlx::query("SELECT value FROM meta WHERE name = 'master_key_check'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        if let Some(row) = check {
            let sealed: String = row.try_get(0).map_err(StoreError::from)?;
            let plain = old
                .decrypt(&sealed, META_CONTEXT)
                .map_err(|_| RotateError::Undecryptable("the master key check".to_owned()))?;
            sqlx::query("UPDATE meta SET value = $1 WHERE name = 'master_key_check'")
                .bind(new.encrypt(&plain, META_CONTEXT))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }

        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(rotated)
    }
}

/// Re-encrypts every `enc:v1:` string inside `value`; returns how many. Secrets sit in step
/// params whose names only the action types know, so the whole document is walked.
fn reseal(
    value: &mut Value,
    old: &MasterKey,
    new: &MasterKey,
    context: &str,
) -> Result<usize, crate::secrets::SecretError> {
    match value {
        Value::String(text) if MasterKey::is_encrypted(text) => {
            let plain = old.decrypt(text, context)?;
            *text = new.encrypt(&plain, context);
            Ok(1)
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|item| reseal(item, old, new, context))
            .sum(),
        Value::Object(map) => map
            .values_mut()
            .map(|item| reseal(item, old, new, context))
            .sum(),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reseal_finds_nested_secrets() {
        let old = MasterKey::from_base64(&MasterKey::generate_base64()).expect("key");
        let new = MasterKey::from_base64(&MasterKey::generate_base64()).expect("key");
        let mut spec = serde_json::json!({
            "name": "n",
            "actions": [{"type": "webhook", "url": "http://x", "secret": old.encrypt("whsec_a", "t")},
                        {"type": "send_email", "subject": "hi"}],
        });
        assert_eq!(reseal(&mut spec, &old, &new, "t").expect("reseals"), 1);
        let sealed = spec["actions"][0]["secret"].as_str().expect("secret");
        assert_eq!(new.decrypt(sealed, "t").expect("new key"), "whsec_a");
        assert!(old.decrypt(sealed, "t").is_err());
        assert!(
            reseal(&mut spec, &old, &new, "t").is_err(),
            "already under the new key"
        );
    }
}
