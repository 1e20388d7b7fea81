//! The administrative subcommands: migrate, tenants, keys, VAPID keys. Each prints one JSON
//! object on stdout, so scripts can read it.

use anyhow::{Context, bail};
use serde_json::json;
use uuid::Uuid;

use crate::config::{KeyCommand, Settings, TenantCommand};
use crate::secrets::{MasterKey, key_file_for_sqlite};
use crate::server::{load_master_key, open_store};

/// Opens and migrates the database and checks (on SQLite: creates) the master key, so a wrong key
/// is refused before anything is written under it.
async fn open_checked(settings: &Settings) -> anyhow::Result<crate::store::Store> {
    let store = open_store(settings).await?;
    load_master_key(settings, &store).await?;
    Ok(store)
}
use crate::store::Backend;

pub async fn migrate(settings: &Settings) -> anyhow::Result<serde_json::Value> {
    open_checked(settings).await?;
    Ok(json!({"migrated": true}))
}

pub async fn tenant(
    settings: &Settings,
    command: TenantCommand,
) -> anyhow::Result<serde_json::Value> {
    match command {
        TenantCommand::Create { name } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                bail!("--name must be 1 to 200 characters");
            }
            let store = open_checked(settings).await?;
            let key = store.create_tenant(name).await?;
            Ok(json!({"tenantId": key.tenant_id, "apiKey": key.api_key, "keyId": key.key_id}))
        }
    }
}

pub async fn key(settings: &Settings, command: KeyCommand) -> anyhow::Result<serde_json::Value> {
    let store = open_checked(settings).await?;
    match command {
        KeyCommand::Create { tenant } => {
            let tenant_id =
                Uuid::parse_str(tenant.trim()).context("--tenant must be a tenant id (UUID)")?;
            let key = store
                .create_api_key(tenant_id)
                .await?
                .with_context(|| format!("no tenant {tenant_id}"))?;
            Ok(json!({"tenantId": key.tenant_id, "keyId": key.key_id, "apiKey": key.api_key}))
        }
        KeyCommand::Revoke { key_id } => {
            let key_id =
                Uuid::parse_str(key_id.trim()).context("--key-id must be a key id (UUID)")?;
            let record = store
                .revoke_api_key(key_id)
                .await?
                .with_context(|| format!("no key {key_id}"))?;
            Ok(
                json!({"keyId": record.key_id, "tenantId": record.tenant_id, "revoked": record.revoked}),
            )
        }
    }
}

/// Re-encrypts every secret at rest under `new_key`, in one transaction. When the current key is
/// the generated key file (SQLite without `--master-key`), the file is replaced as well: the new
/// key is written beside it before the commit and renamed over it after, so a crash in between
/// leaves it in `master.key.new` rather than lost.
pub async fn rotate_master_key(
    settings: &Settings,
    new_key: &str,
) -> anyhow::Result<serde_json::Value> {
    let new = MasterKey::from_base64(new_key).context("--new-key")?;
    let store = open_store(settings).await?;
    let old = load_master_key(settings, &store).await?;
    let key_file = match (&settings.master_key, store.backend()) {
        (None, Backend::Sqlite) => key_file_for_sqlite(&settings.database_url),
        _ => None,
    };
    let staged = match &key_file {
        Some(path) => {
            let staged = path.with_extension("key.new");
            write_key_file(&staged, new_key.trim())
                .with_context(|| format!("writing {}", staged.display()))?;
            Some(staged)
        }
        None => None,
    };
    let rotated = store.rotate_master_key(&old, &new).await;
    let rotated = match rotated {
        Ok(rotated) => rotated,
        Err(e) => {
            if let Some(staged) = &staged {
                let _ = std::fs::remove_file(staged);
            }
            return Err(e.into());
        }
    };
    if let (Some(staged), Some(path)) = (&staged, &key_file) {
        std::fs::rename(staged, path).with_context(|| {
            format!(
                "the secrets are now under the new key, but {} could not replace {}: move it \
                 there by hand",
                staged.display(),
                path.display()
            )
        })?;
    }
    let mut answer = json!({
        "rotated": rotated.integrations + rotated.workflow_secrets,
        "integrations": rotated.integrations,
        "workflowSecrets": rotated.workflow_secrets,
    });
    if let Some(path) = key_file {
        answer["keyFile"] = json!(path.display().to_string());
    }
    Ok(answer)
}

/// Writes a key file readable by its owner only.
fn write_key_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
