//! Storage: one interface over two real backends, SQLite (the embedded default) and PostgreSQL.
//!
//! Both go through sqlx's `Any` driver with portable SQL (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`), so every query is written once. Columns use the types both share: ids are UUID
//! text, times Unix milliseconds, JSON documents text. Every query that touches tenant data takes
//! the tenant id: there is no function here that reads across tenants by accident.

mod events;
mod executions;
mod integrations;
mod quotas;
mod rotation;
mod row;
mod schedules;
mod tenants;
mod workflows;

pub use events::{EventRecord, EventWrite, Ingested, NewEvent};
pub(crate) use events::{finish_event, reserve_chain_executions};
pub use executions::*;
pub use integrations::{
    ConfiguredIntegration, INTEGRATION_ACTIVE, INTEGRATION_DISABLED, IntegrationRecord,
    NewIntegration,
};
pub use rotation::{RotateError, Rotated};
pub use schedules::{ScheduledWorkflow, TickClaim, TickRecord};
pub use tenants::{ApiKeyRecord, NewApiKey, TenantRecord, is_well_formed_key};
pub use workflows::{StoredWorkflow, WorkflowChangeError, WorkflowSpec, WorkflowWrite};

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions};

/// One set of migrations serves both databases: they are written in the SQL both understand.
static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Which database is behind the pool; the few places SQL differs ask this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Storage failures. `Unavailable` (the database cannot be reached) is answered 503; the rest are
/// internal and never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn from_sqlx(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            // The server going away mid-query answers with an error of its own rather than a
            // broken socket: PostgreSQL's connection exceptions (class 08) and admin/crash
            // shutdown or "cannot connect now" (57P01–57P03, what a `pg_ctl restart` sends to
            // every open connection). The database is unavailable, not broken: 503, not 500.
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|code| {
                    code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
                }) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The database: a pool plus what kind it is.
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes. On SQLite a pool of one connection: writers queue fairly for it in the pool instead
    /// of colliding on the file lock, where SQLite's busy handler would make them sleep and retry.
    writer: AnyPool,
    backend: Backend,
}

/// Milliseconds since the Unix epoch, the stored form of every time.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl Store {
    /// Connects to `sqlite://…` or `postgres://…`. SQLite runs in WAL mode with a busy timeout so
    /// the API, workers and scheduler of one process can share the file.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unavailable(format!(
                "unsupported database URL `{}`: use sqlite://… or postgres://…",
                redact_url(url)
            )));
        };
        // Batched statements come in a few sizes each (see [`pow2_chunks`]): keep them all
        // prepared on PostgreSQL instead of re-parsing them as the default cache of 100 churns.
        let url = &if backend == Backend::Postgres && !url.contains("statement-cache-capacity") {
            let joiner = if url.contains('?') { '&' } else { '?' };
            format!("{url}{joiner}statement-cache-capacity=500")
        } else {
            url.to_owned()
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad database URL: {e}")))?
            .disable_statement_logging();
        let open = |connections: u32| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(3))
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL lets readers run beside the one writer; the busy timeout covers
                            // other processes writing the same file.
                            sqlx::raw_sql(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .execute(&mut *conn)
                            .await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(options.clone())
        };
        let unavailable =
            |e: sqlx::Error| StoreError::Unavailable(format!("{}: {e}", redact_url(url)));
        let pool = open(max_connections.max(1)).await.map_err(unavailable)?;
        let writer = match backend {
            Backend::Sqlite => open(1).await.map_err(unavailable)?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Store {
            pool,
            writer,
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool single write statements go through (see [`Store::writer`]'s field doc).
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Begins a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// deferred transaction that reads and then writes can fail with SQLITE_BUSY instead of
    /// waiting when another writer got in between.
    pub(crate) async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
        .map_err(StoreError::from_sqlx)
    }

    /// Applies pending migrations (idempotent; serve, worker and `migrate` all call it).
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATIONS.run(&self.writer).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => StoreError::from_sqlx(e),
            other => StoreError::Corrupt(format!("migration failed: {other}")),
        })
    }

    /// A write transaction whose commit need not wait for PostgreSQL's WAL flush: for worker-side
    /// state (claims, step outcomes) whose loss in a database crash only means a step runs again
    /// with the same `step_id` — which every action tolerates. Events accepted by the API are
    /// always committed durably ([`Store::write_tx`]).
    pub(crate) async fn relaxed_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.write_tx().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        Ok(tx)
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::from_sqlx)
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// `($s, …), ($s+cols, …), …`: the placeholders of a multi-row `VALUES` list of `rows` rows of
/// `cols` values, numbered from `$start`.
pub(crate) fn values_list(rows: usize, cols: usize, start: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for col in 0..cols {
            if col > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(start + row * cols + col).to_string());
        }
        out.push(')');
    }
    out
}

/// `$start, $start+1, …`: `n` placeholders for an `IN (…)` list.
pub(crate) fn in_list(n: usize, start: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How much a list page may hold, in characters of stored documents (event data, workflow specs,
/// step outputs): a page ends early, with a cursor, rather than grow past it. At least one row is
/// always returned, so every row can be read.
pub const PAGE_BUDGET_CHARS: i64 = 4 * 1024 * 1024;

/// The first ids of a size query's rows (columns `id` and `size`), in page order, whose sizes add up to at
/// most `max_chars` (always at least the first), and whether rows were left out. Listings measure
/// first and load only what they keep, so a page of large documents is never read past the budget.
pub(crate) fn within_budget(
    sizes: &[sqlx::any::AnyRow],
    max_chars: i64,
) -> StoreResult<(Vec<String>, bool)> {
    let mut kept: Vec<String> = Vec::new();
    let mut total = 0i64;
    for row in sizes {
        let row = row::Columns::of(row);
        let size: i64 = row.get::<Option<i64>>("size")?.unwrap_or(0);
        total = total.saturating_add(size);
        if total > max_chars && !kept.is_empty() {
            break;
        }
        kept.push(row.get("id")?);
    }
    let cut = kept.len() < sizes.len();
    Ok((kept, cut))
}

/// Splits a batch into chunks whose sizes are powers of two (largest first, at most 256), so a
/// batched statement is written in at most nine shapes and stays in the prepared-statement cache.
pub(crate) fn pow2_chunks<T>(items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let size = if rest.len() >= 256 {
            256
        } else {
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
    }
    out
}

/// A database URL with its password hidden, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_power_of_two_chunks() {
        let items: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = pow2_chunks(&items).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![256, 32, 8, 4]);
        assert_eq!(
            pow2_chunks(&items[..37])
                .iter()
                .map(|c| c.len())
                .collect::<Vec<_>>(),
            vec![32, 4, 1]
        );
        assert!(pow2_chunks::<u32>(&[]).is_empty());
        let flat: Vec<u32> = pow2_chunks(&items[..37]).concat();
        assert_eq!(flat, items[..37].to_vec());
        assert_eq!(values_list(2, 3, 4), "($4, $5, $6), ($7, $8, $9)");
        assert_eq!(in_list(3, 2), "$2, $3, $4");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
