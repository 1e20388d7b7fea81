//! The administrative subcommands: migrate, tenants, keys, VAPID keys. Each prints one JSON
//! object on stdout, so scripts can read it.

use anyhow::{Context, bail};
use serde_json::json;
use uuid::Uuid;

use crate::config::{KeyCommand, Settings, TenantCommand};
use crate::server::open_store;

pub async fn migrate(settings: &Settings) -> anyhow::Result<serde_json::Value> {
    open_store(settings).await?;
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
            let store = open_store(settings).await?;
            let key = store.create_tenant(name).await?;
            Ok(json!({"tenantId": key.tenant_id, "apiKey": key.api_key, "keyId": key.key_id}))
        }
    }
}

pub async fn key(settings: &Settings, command: KeyCommand) -> anyhow::Result<serde_json::Value> {
    let store = open_store(settings).await?;
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
