//! What a run sets up through the binary and the API: a database of its own, a tenant, the
//! webhook workflow, and the events it posts.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

/// The master key of every run (PostgreSQL needs one).
pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Creates a schema of the run's own; its name and the database URL that uses it.
pub async fn postgres_schema(admin_url: &str, prefix: &str) -> anyhow::Result<(String, String)> {
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await?;
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
    Ok((schema, url))
}

/// Drops a schema made by [`postgres_schema`].
pub async fn drop_postgres_schema(admin_url: &str, schema: &str) -> anyhow::Result<()> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// The flags of a PostgreSQL + Redis deployment.
pub fn postgres_flags(database_url: &str, redis_url: &str, redis_prefix: &str) -> Vec<String> {
    vec![
        "--database-url".into(),
        database_url.into(),
        "--redis-url".into(),
        redis_url.into(),
        "--redis-prefix".into(),
        redis_prefix.into(),
        "--master-key".into(),
        MASTER_KEY.into(),
    ]
}

/// `switchyard tenant create`; the tenant's API key.
pub async fn create_tenant(binary: &Path, common: &[String], name: &str) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .args(["tenant", "create", "--name", name])
        .args(common)
        .stderr(Stdio::inherit())
        .output()
        .await?;
    let tenant: Value = serde_json::from_slice(&output.stdout).context("tenant create output")?;
    Ok(tenant["apiKey"].as_str().context("apiKey")?.to_owned())
}

/// One workflow on `order_paid` whose one step posts a webhook to `hook`.
pub async fn configure_webhook_workflow(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    name: &str,
    hook: &str,
) -> anyhow::Result<()> {
    let workflow = json!({"name": name, "entityType": "Order", "triggerId": "order_paid",
        "conditions": {"status": "paid"}, "condition": "entity.total > 100 && entity.customer.country == \"DE\"",
        "action": {"type": "webhook", "url": hook}});
    let configured = http
        .post(format!("{base}/api/workflows/configure"))
        .bearer_auth(key)
        .json(&workflow)
        .send()
        .await?;
    if !configured.status().is_success() {
        bail!("configure: {}", configured.text().await.unwrap_or_default());
    }
    Ok(())
}

/// An `order_paid` event that matches the workflow.
pub fn event(id: &str) -> Value {
    json!({
        "entityType": "Order", "trigger": "order_paid", "entityId": format!("ord_{id}"), "eventId": id,
        "data": {"status": "paid", "total": 120.5, "currency": "EUR",
                 "customer": {"email": "ana@example.com", "country": "DE"}},
        "previous": {"status": "pending"}
    })
}

/// Posts [`event`]`(id)`; anything but 202 is an error.
pub async fn post_event(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
) -> anyhow::Result<()> {
    let response = http
        .post(format!("{base}/api/events"))
        .bearer_auth(key)
        .json(&event(id))
        .send()
        .await?;
    if response.status() != StatusCode::ACCEPTED {
        bail!(
            "POST /api/events answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// A fresh temporary directory and Redis key prefix for one run named `what`.
pub fn run_scratch(what: &str) -> anyhow::Result<(std::path::PathBuf, String)> {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-{what}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok((dir, format!("{what}_{}", uuid::Uuid::new_v4().simple())))
}

/// Flags every benchmark server gets: the receiver is on loopback, and the client must not be
/// rate limited.
pub fn common_flags() -> Vec<String> {
    ["--allow-private-targets", "--rate-limit", "1000000"]
        .map(String::from)
        .to_vec()
}

/// Starts the engine as a user runs it: `serve` alone on SQLite; with `scale_out` (PostgreSQL +
/// Redis) an API process (`serve --no-worker`) and a `worker` process. `args` adds the flags to a
/// role's first words. The first server is the API.
pub async fn start_engine(
    binary: &Path,
    scale_out: bool,
    args: impl Fn(&[&str]) -> Vec<String>,
) -> anyhow::Result<Vec<crate::server::Server>> {
    use crate::server::Server;
    if !scale_out {
        return Ok(vec![Server::start(binary, &args(&["serve"])).await?]);
    }
    Ok(vec![
        Server::start(binary, &args(&["serve", "--no-worker"])).await?,
        Server::start(binary, &args(&["worker"])).await?,
    ])
}
