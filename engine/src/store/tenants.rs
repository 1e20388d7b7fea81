//! Tenants and their API keys. Keys are stored as SHA-256 hashes; the plain key exists only in the
//! answer that creates it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::row::Columns;
use super::{Store, StoreError, StoreResult, now_ms};

/// The prefix every Switchyard API key starts with.
pub const KEY_PREFIX: &str = "sk_";
/// `sk_` + base64url of 32 random bytes.
const KEY_LEN: usize = KEY_PREFIX.len() + 43;

#[derive(Debug, Clone)]
pub struct TenantRecord {
    pub id: Uuid,
    pub name: String,
    pub notification_email: Option<String>,
}

/// A key just minted: the only moment the plain key is known.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
    pub api_key: String,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
    pub revoked: bool,
}

fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn mint_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `key` has the shape of a Switchyard key; anything else is refused without a lookup.
pub fn is_well_formed_key(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn parse_uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("bad uuid `{s}`: {e}")))
}

/// A row's (`tenant_id`, `id`): what a queue needs to serve the row's job in its tenant's turn.
pub(crate) fn tenant_and_id(row: &sqlx::any::AnyRow) -> StoreResult<(Uuid, Uuid)> {
    let row = Columns::of(row);
    Ok((row.uuid("tenant_id")?, row.uuid("id")?))
}

impl Store {
    /// Creates a tenant with its first API key.
    pub async fn create_tenant(&self, name: &str) -> StoreResult<NewApiKey> {
        let tenant_id = Uuid::now_v7();
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant_id.to_string())
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        let key = insert_key(&mut tx, tenant_id).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(key)
    }

    /// Creates a tenant with its first API key only when the database has no tenant yet (the
    /// first-run bootstrap of `serve`); `None` when one exists. Check and insert share one
    /// transaction holding the tenants write lock, so of several processes starting at once on
    /// an empty database exactly one creates it.
    pub async fn create_first_tenant(&self, name: &str) -> StoreResult<Option<NewApiKey>> {
        let mut tx = self.write_tx().await?;
        if self.backend() == super::Backend::Postgres {
            // SHARE ROW EXCLUSIVE conflicts with itself and with inserts, not with reads.
            sqlx::query("LOCK TABLE tenants IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        let existing = sqlx::query("SELECT COUNT(*) AS n FROM tenants")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        let existing: i64 = Columns::of(&existing).get("n")?;
        if existing > 0 {
            return Ok(None);
        }
        let tenant_id = Uuid::now_v7();
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant_id.to_string())
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        let key = insert_key(&mut tx, tenant_id).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(Some(key))
    }

    pub async fn tenant(&self, tenant_id: Uuid) -> StoreResult<Option<TenantRecord>> {
        let row = sqlx::query("SELECT id, name, notification_email FROM tenants WHERE id = $1")
            .bind(tenant_id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.map(|r| {
            let r = Columns::of(&r);
            Ok(TenantRecord {
                id: r.uuid("id")?,
                name: r.get("name")?,
                notification_email: r.get("notification_email")?,
            })
        })
        .transpose()
    }

    pub async fn tenant_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM tenants")
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        Columns::of(&row).get("n")
    }

    pub async fn set_notification_email(
        &self,
        tenant_id: Uuid,
        email: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE tenants SET notification_email = $1 WHERE id = $2")
            .bind(email)
            .bind(tenant_id.to_string())
            .execute(self.writer())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Mints another key for an existing tenant; `None` when the tenant does not exist.
    pub async fn create_api_key(&self, tenant_id: Uuid) -> StoreResult<Option<NewApiKey>> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE id = $1")
            .bind(tenant_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let key = insert_key(&mut tx, tenant_id).await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(Some(key))
    }

    /// Revokes a key; `None` when no such key exists. Revoking twice is harmless.
    pub async fn revoke_api_key(&self, key_id: Uuid) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 \
             RETURNING tenant_id",
        )
        .bind(now_ms())
        .bind(key_id.to_string())
        .fetch_optional(self.writer())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.map(|r| {
            Ok(ApiKeyRecord {
                key_id,
                tenant_id: Columns::of(&r).uuid("tenant_id")?,
                revoked: true,
            })
        })
        .transpose()
    }

    /// [`Store::find_api_key`] for several keys at once (the API looks up concurrent requests'
    /// keys together); one answer per key, in order.
    pub async fn find_api_keys(&self, keys: &[String]) -> StoreResult<Vec<Option<ApiKeyRecord>>> {
        let hashes: Vec<Option<String>> = keys
            .iter()
            .map(|k| is_well_formed_key(k).then(|| hash_key(k)))
            .collect();
        let mut wanted: Vec<String> = hashes.iter().flatten().cloned().collect();
        wanted.sort();
        wanted.dedup();
        let mut found = std::collections::HashMap::new();
        for chunk in super::pow2_chunks(&wanted) {
            let sql = format!(
                "SELECT id, tenant_id, revoked_at, key_hash FROM api_keys WHERE key_hash IN ({})",
                super::in_list(chunk.len(), 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for hash in chunk {
                query = query.bind(hash.clone());
            }
            for r in query
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?
            {
                let r = Columns::of(&r);
                found.insert(r.get::<String>("key_hash")?, decode_key(r)?);
            }
        }
        Ok(hashes
            .iter()
            .map(|h| h.as_ref().and_then(|h| found.get(h).cloned()))
            .collect())
    }

    /// The key's record when `key` is a known key; revoked keys are returned with `revoked`.
    pub async fn find_api_key(&self, key: &str) -> StoreResult<Option<ApiKeyRecord>> {
        if !is_well_formed_key(key) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT id, tenant_id, revoked_at FROM api_keys WHERE key_hash = $1")
            .bind(hash_key(key))
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.map(|r| decode_key(Columns::of(&r))).transpose()
    }
}

/// An API key from `id, tenant_id, revoked_at`.
fn decode_key(row: Columns<'_>) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        key_id: row.uuid("id")?,
        tenant_id: row.uuid("tenant_id")?,
        revoked: row.get::<Option<i64>>("revoked_at")?.is_some(),
    })
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: Uuid,
) -> StoreResult<NewApiKey> {
    let key_id = Uuid::now_v7();
    let api_key = mint_key();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key_id.to_string())
    .bind(tenant_id.to_string())
    .bind(hash_key(&api_key))
    .bind(&api_key[..KEY_PREFIX.len() + 6])
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(NewApiKey {
        key_id,
        tenant_id,
        api_key,
    })
}

impl Store {
    /// Refuses a master key that cannot decrypt what an earlier key encrypted; on the first start
    /// records a check value under this key.
    pub async fn check_master_key(
        &self,
        key: &crate::secrets::MasterKey,
    ) -> Result<(), crate::secrets::SecretError> {
        const CHECK: &str = "switchyard master key check";
        let stored = sqlx::query("SELECT value FROM meta WHERE name = 'master_key_check'")
            .fetch_optional(self.pool())
            .await
            .map_err(|e| {
                crate::secrets::SecretError::BadKey(format!("reading the key check: {e}"))
            })?;
        match stored {
            Some(row) => {
                let value: String = Columns::of(&row)
                    .get("value")
                    .map_err(|e| crate::secrets::SecretError::BadKey(e.to_string()))?;
                // Either scheme: the re-encryption to record-bound values runs after this check.
                match key.decrypt_any_scheme(
                    &value,
                    &crate::secrets::SecretScope::meta("master_key_check"),
                ) {
                    Ok(plain) if plain == CHECK => Ok(()),
                    _ => Err(crate::secrets::SecretError::BadKey(
                        "this master key cannot decrypt the secrets already in the database; \
                         start with the key they were written under"
                            .to_owned(),
                    )),
                }
            }
            None => {
                sqlx::query(
                    "INSERT INTO meta (name, value) VALUES ('master_key_check', $1) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(key.encrypt(
                    CHECK,
                    &crate::secrets::SecretScope::meta("master_key_check"),
                ))
                .execute(self.writer())
                .await
                .map_err(|e| {
                    crate::secrets::SecretError::BadKey(format!("writing the key check: {e}"))
                })?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_well_formed_and_distinct() {
        let a = mint_key();
        let b = mint_key();
        assert!(is_well_formed_key(&a), "{a}");
        assert_ne!(a, b);
        assert!(!is_well_formed_key("sk_short"));
        assert!(!is_well_formed_key(&a.replacen("sk_", "pk_", 1)));
        assert_eq!(hash_key(&a).len(), 64);
    }
}
