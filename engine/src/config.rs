//! Operator settings (CONTRACT §2): every one a flag and an environment variable, flags winning.
//! Parsed and validated once at start, then passed down as plain structs.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Switchyard: workflow automation for commerce.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP API + cron scheduler + in-process worker pool.
    Serve {
        /// API and scheduler only: run workers elsewhere with `switchyard worker`.
        #[arg(long)]
        no_worker: bool,
        /// Do not create a `default` tenant (and print its API key) on a database that has none.
        #[arg(long, env = "SWITCHYARD_NO_BOOTSTRAP")]
        no_bootstrap: bool,
    },
    /// Worker pool only; any number of these against one Redis and one database.
    Worker,
    /// Apply database migrations.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// VAPID keys for Web Push.
    Vapid {
        #[command(subcommand)]
        command: VapidCommand,
    },
    /// Re-encrypt every secret at rest (integration credentials, webhook secrets) under a new master
    /// key, in one transaction; prints `{"rotated": N}`. Stop every server using the database first.
    RotateMasterKey {
        /// The new key: 32 bytes, base64.
        #[arg(long = "new-key", allow_hyphen_values = true)]
        new_key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints `{"tenantId": "...", "apiKey": "sk_..."}`.
    Create {
        #[arg(long, allow_hyphen_values = true)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Mint another API key for a tenant.
    Create {
        #[arg(long, allow_hyphen_values = true)]
        tenant: String,
    },
    /// Revoke an API key by its id.
    Revoke {
        #[arg(long = "key-id", allow_hyphen_values = true)]
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VapidCommand {
    /// Print a new key pair: `{"privateKey": "...", "publicKey": "..."}` (base64url, raw P-256).
    Generate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Settings shared by every subcommand. `global` so they are accepted after the subcommand;
/// `allow_hyphen_values` because base64url keys may begin with `-`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// API address.
    #[arg(
        long,
        env = "SWITCHYARD_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// `sqlite://…` (embedded) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://switchyard.db?mode=rwc",
        global = true,
        allow_hyphen_values = true
    )]
    pub database_url: String,

    /// Dispatch jobs through Redis; unset: through the SQLite database itself.
    #[arg(long, env = "REDIS_URL", global = true, allow_hyphen_values = true)]
    pub redis_url: Option<String>,

    /// Jobs a worker process runs at once.
    #[arg(
        long,
        env = "SWITCHYARD_CONCURRENCY",
        default_value_t = 64,
        global = true
    )]
    pub concurrency: usize,

    /// `smtp://[user:pass@]host:port`, `smtps://…` or `smtp+plain://…`.
    #[arg(long, env = "SMTP_URL", global = true, allow_hyphen_values = true)]
    pub smtp_url: Option<String>,

    /// From header of emails.
    #[arg(
        long,
        env = "SWITCHYARD_EMAIL_FROM",
        default_value = "Switchyard <no-reply@localhost>",
        global = true,
        allow_hyphen_values = true
    )]
    pub email_from: String,

    /// base64url raw P-256 private key for Web Push.
    #[arg(
        long,
        env = "VAPID_PRIVATE_KEY",
        global = true,
        allow_hyphen_values = true
    )]
    pub vapid_private_key: Option<String>,

    /// VAPID `sub` claim.
    #[arg(
        long,
        env = "VAPID_SUBJECT",
        default_value = "mailto:admin@localhost",
        global = true,
        allow_hyphen_values = true
    )]
    pub vapid_subject: String,

    /// 32 bytes, base64: encrypts integration credentials and webhook secrets at rest.
    #[arg(
        long,
        env = "SWITCHYARD_MASTER_KEY",
        global = true,
        allow_hyphen_values = true
    )]
    pub master_key: Option<String>,

    /// Let webhooks and integration calls reach loopback/private addresses.
    #[arg(
        long,
        env = "SWITCHYARD_ALLOW_PRIVATE_TARGETS",
        global = true,
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub allow_private_targets: bool,

    /// Delays between attempts of a failing step; the number of entries is the number of retries.
    #[arg(
        long,
        env = "SWITCHYARD_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h",
        global = true,
        value_parser = parse_retry_schedule
    )]
    pub retry_schedule: RetrySchedule,

    /// `pretty` or `json`.
    #[arg(
        long,
        env = "SWITCHYARD_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,

    /// How long a worker holds a claimed step before another worker may take it over (renewed
    /// while the step runs).
    #[arg(long, env = "SWITCHYARD_LEASE", default_value = "15s", global = true, value_parser = parse_duration)]
    pub lease: Duration,

    /// How often each worker process looks for expired leases and work the queue lost.
    #[arg(long, env = "SWITCHYARD_SWEEP_INTERVAL", default_value = "1s", global = true, value_parser = parse_duration)]
    pub sweep_interval: Duration,

    /// A due step still waiting this long is dispatched again (the queue may have lost it).
    #[arg(long, env = "SWITCHYARD_REDISPATCH_AFTER", default_value = "20s", global = true, value_parser = parse_duration)]
    pub redispatch_after: Duration,

    /// At shutdown, how long running steps may take to finish before they are handed back.
    #[arg(long, env = "SWITCHYARD_SHUTDOWN_GRACE", default_value = "10s", global = true, value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// How often `serve`'s scheduler looks for due schedule ticks: a tick fires up to this long
    /// after its time.
    #[arg(long, env = "SWITCHYARD_SCHEDULER_INTERVAL", default_value = "500ms", global = true, value_parser = parse_duration)]
    pub scheduler_interval: Duration,

    /// Key prefix of the Redis queue (several deployments may share one Redis).
    #[arg(
        long,
        env = "SWITCHYARD_REDIS_PREFIX",
        default_value = "switchyard",
        global = true
    )]
    pub redis_prefix: String,

    /// API requests per second per tenant (the token bucket holds twice this).
    #[arg(
        long,
        env = "SWITCHYARD_RATE_LIMIT",
        default_value_t = 1000,
        global = true
    )]
    pub rate_limit: u32,

    /// Time for one event's conditions over all of its tenant's workflows; workflows not yet
    /// evaluated when it is spent do not match (reported with reason `budget_exceeded`).
    #[arg(long, env = "SWITCHYARD_MATCH_BUDGET", default_value = "200ms", global = true, value_parser = parse_duration)]
    pub match_budget: Duration,

    /// Executions one root event and everything its steps emit may start; further matches are
    /// refused (reason `chain_limit`).
    #[arg(
        long,
        env = "SWITCHYARD_MAX_CHAIN_EXECUTIONS",
        default_value_t = 100,
        global = true
    )]
    pub max_chain_executions: u32,

    /// Workflows per tenant (configuring one more answers 403 `QUOTA_EXCEEDED`).
    #[arg(
        long,
        env = "SWITCHYARD_MAX_WORKFLOWS",
        default_value_t = 1000,
        global = true
    )]
    pub max_workflows: u32,

    /// Push subscriptions per tenant (saving one more answers 403 `QUOTA_EXCEEDED`).
    #[arg(
        long,
        env = "SWITCHYARD_MAX_PUSH_SUBSCRIPTIONS",
        default_value_t = 100_000,
        global = true
    )]
    pub max_push_subscriptions: u32,

    /// Executions one bulk `POST /api/executions/resume` or `/cancel` acts on (oldest first); the
    /// answer says `more: true` when more matched, and the caller calls again.
    #[arg(
        long,
        env = "SWITCHYARD_MAX_BULK_EXECUTIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub max_bulk_executions: u32,
    /// How long a client may take to send a request's headers; a connection that has not sent
    /// them in time is closed (slow-header clients cannot hold connections open).
    #[arg(long, env = "SWITCHYARD_HEADER_TIMEOUT", default_value = "10s", global = true, value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// How long one request may take, body and handler included; past it the answer is 408
    /// `REQUEST_TIMEOUT`.
    #[arg(long, env = "SWITCHYARD_REQUEST_TIMEOUT", default_value = "30s", global = true, value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// The largest text one template (one step parameter) renders to, and the largest value any
    /// template operator, filter or loop may build on the way (CONTRACT §7).
    #[arg(
        long,
        env = "SWITCHYARD_MAX_RENDERED_BYTES",
        default_value_t = switchyard_actions::template::DEFAULT_MAX_RENDERED_BYTES,
        value_parser = parse_rendered_bytes,
        global = true
    )]
    pub max_rendered_bytes: usize,
}

fn parse_rendered_bytes(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}`: expected a positive number of bytes")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("`{text}`: {e}"))
}

/// The delays of `--retry-schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

fn parse_retry_schedule(text: &str) -> Result<RetrySchedule, String> {
    let text = text.trim();
    if text.is_empty() || text == "none" {
        return Ok(RetrySchedule(Vec::new()));
    }
    text.split(',')
        .map(|part| {
            let part = part.trim();
            humantime::parse_duration(part).map_err(|e| format!("`{part}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|delays| {
            if delays.len() > 50 {
                Err("at most 50 retries".to_owned())
            } else {
                Ok(RetrySchedule(delays))
            }
        })
}

impl Settings {
    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres:") || self.database_url.starts_with("postgresql:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_after_the_subcommand_and_leading_dashes() {
        let cli = Cli::try_parse_from([
            "switchyard",
            "tenant",
            "create",
            "--database-url",
            "sqlite://x.db",
            "--master-key",
            "-abc",
            "--name",
            "-A",
        ])
        .expect("parses");
        assert_eq!(cli.settings.database_url, "sqlite://x.db");
        assert_eq!(cli.settings.master_key.as_deref(), Some("-abc"));
        match cli.command {
            Command::Tenant {
                command: TenantCommand::Create { name },
            } => assert_eq!(name, "-A"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_schedule_parses() {
        assert_eq!(
            parse_retry_schedule("1s, 2m").expect("ok").0,
            vec![Duration::from_secs(1), Duration::from_secs(120)]
        );
        assert!(parse_retry_schedule("soon").is_err());
        assert_eq!(parse_retry_schedule("").expect("ok").0, vec![]);
    }
}
