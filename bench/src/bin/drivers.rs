//! sqlx's `Any` driver against the native drivers (`PgPool`, `SqlitePool`), on statements shaped
//! like the hot path's (issue: "measure whether sqlx's native drivers per backend beat `Any`").
//!
//! The store speaks through `Any` so one set of portable SQL serves both backends. What `Any`
//! costs is client work: arguments and rows are converted between `AnyValue` and the native
//! types. This binary runs the same statements through both pools, rounds interleaved (Any,
//! native, Any, native…) so a busy machine slows both alike, and prints per statement the wall
//! time and the CPU time of this process (every thread's, from `/proc/self/task/*/schedstat`):
//! on PostgreSQL the server is another process, so that CPU time is the driver's own cost.
//!
//! ```text
//! cargo build --release -p switchyard-bench --bin drivers
//! ./target/release/drivers --postgres-url postgres://postgres@127.0.0.1:5432/test
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AnyPool, PgPool, SqlitePool};

#[derive(Parser)]
struct Args {
    /// PostgreSQL to measure against (a table of its own is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Rounds per statement and driver.
    #[arg(long, default_value_t = 2000)]
    rounds: usize,
    /// Rows per statement (the hot path's batches are up to 64).
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

/// CPU time of every thread of this process, in nanoseconds.
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[derive(Default, Clone, Copy)]
struct Tally {
    wall: Duration,
    cpu_ns: u64,
    n: u32,
}

impl Tally {
    fn per_op(&self) -> (f64, f64) {
        let n = f64::from(self.n.max(1));
        (
            self.wall.as_secs_f64() * 1e6 / n,
            self.cpu_ns as f64 / 1e3 / n,
        )
    }
}

fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..cols)
                .map(|c| format!("${}", r * cols + c + 1))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn in_list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const STATEMENTS: [&str; 3] = ["select", "update", "insert"];

/// One round of statement `which` on a pool; the pool type differs, the code does not.
macro_rules! round {
    ($pool:expr, $table:expr, $which:expr, $batch:expr, $round:expr, $rows:expr) => {{
        let batch: usize = $batch;
        let start = ($round * batch) % ($rows - batch);
        let ids: Vec<String> = (start..start + batch).map(|i| format!("id-{i:08}")).collect();
        match $which {
            0 => {
                let sql = format!(
                    "SELECT id, status, attempts, data FROM {} WHERE id IN ({})",
                    $table,
                    in_list(batch)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in &ids {
                    q = q.bind(id.clone());
                }
                let rows = q.fetch_all($pool).await?;
                let mut total = 0usize;
                for row in &rows {
                    use sqlx::Row;
                    let id: String = row.try_get("id")?;
                    let status: String = row.try_get("status")?;
                    let attempts: i64 = row.try_get("attempts")?;
                    let data: Option<String> = row.try_get("data")?;
                    total += id.len() + status.len() + attempts as usize + data.map_or(0, |d| d.len());
                }
                std::hint::black_box(total);
            }
            1 => {
                let sql = format!(
                    "UPDATE {} SET attempts = attempts + 1, status = $1 WHERE id IN ({}) \
                     RETURNING id, attempts",
                    $table,
                    (2..=batch + 1)
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind("running".to_owned());
                for id in &ids {
                    q = q.bind(id.clone());
                }
                let rows = q.fetch_all($pool).await?;
                std::hint::black_box(rows.len());
            }
            _ => {
                let sql = format!(
                    "INSERT INTO {}_log (id, step_id, started_at, outcome, error, output, n) VALUES {}",
                    $table,
                    placeholders(batch, 7)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (i, id) in ids.iter().enumerate() {
                    q = q
                        .bind(format!("{}-{}-{i}", $round, $which))
                        .bind(id.clone())
                        .bind(1_764_000_000_000i64 + i as i64)
                        .bind("succeeded".to_owned())
                        .bind(None::<String>)
                        .bind(Some(r#"{"status":200,"summary":"delivered"}"#.to_owned()))
                        .bind(i as i64);
                }
                q.execute($pool).await?;
            }
        }
    }};
}

const ROWS: usize = 20_000;

async fn setup(pool: &AnyPool, table: &str) -> anyhow::Result<()> {
    for sql in [
        format!("DROP TABLE IF EXISTS {table}"),
        format!("DROP TABLE IF EXISTS {table}_log"),
        format!(
            "CREATE TABLE {table} (id TEXT PRIMARY KEY, status TEXT NOT NULL, \
             attempts BIGINT NOT NULL, data TEXT)"
        ),
        format!(
            "CREATE TABLE {table}_log (id TEXT PRIMARY KEY, step_id TEXT NOT NULL, \
             started_at BIGINT NOT NULL, outcome TEXT NOT NULL, error TEXT, output TEXT, n BIGINT NOT NULL)"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
    }
    let data = "x".repeat(300);
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(500) {
        let sql = format!(
            "INSERT INTO {table} (id, status, attempts, data) VALUES {}",
            placeholders(chunk.len(), 4)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in chunk {
            q = q
                .bind(format!("id-{i:08}"))
                .bind("queued".to_owned())
                .bind(0i64)
                .bind(data.clone());
        }
        q.execute(pool).await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
        .execute(pool)
        .await?;
    Ok(())
}

async fn measure_pg(args: &Args) -> anyhow::Result<[(Tally, Tally); 3]> {
    let table = format!("drivers_bench_{}", std::process::id());
    let any: AnyPool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&args.postgres_url)
        .await
        .context("PostgreSQL (Any)")?;
    let native: PgPool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&args.postgres_url)
        .await
        .context("PostgreSQL (native)")?;
    setup(&any, &table).await?;
    let mut out = [(Tally::default(), Tally::default()); 3];
    for (which, slot) in out.iter_mut().enumerate() {
        // Warm up: statements prepared, caches filled.
        for r in 0..50 {
            round!(&any, table, which, args.batch, r, ROWS);
            round!(&native, table, which, args.batch, r + 50, ROWS);
        }
        for r in 0..args.rounds {
            let (c0, t0) = (process_cpu_ns(), Instant::now());
            round!(&any, table, which, args.batch, 2 * r + 100, ROWS);
            slot.0.wall += t0.elapsed();
            slot.0.cpu_ns += process_cpu_ns() - c0;
            slot.0.n += 1;
            let (c0, t0) = (process_cpu_ns(), Instant::now());
            round!(&native, table, which, args.batch, 2 * r + 101, ROWS);
            slot.1.wall += t0.elapsed();
            slot.1.cpu_ns += process_cpu_ns() - c0;
            slot.1.n += 1;
        }
    }
    for sql in [
        format!("DROP TABLE {table}"),
        format!("DROP TABLE {table}_log"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&any).await?;
    }
    Ok(out)
}

async fn measure_sqlite(args: &Args) -> anyhow::Result<[(Tally, Tally); 3]> {
    let dir = std::env::temp_dir().join(format!("drivers-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let any: AnyPool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .context("SQLite (Any)")?;
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&any)
        .await?;
    let native: SqlitePool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await
        .context("SQLite (native)")?;
    let table = "drivers_bench_sqlite";
    setup(&any, table).await?;
    let mut out = [(Tally::default(), Tally::default()); 3];
    for (which, slot) in out.iter_mut().enumerate() {
        for r in 0..50 {
            round!(&any, table, which, args.batch, r, ROWS);
            round!(&native, table, which, args.batch, r + 50, ROWS);
        }
        for r in 0..args.rounds {
            let (c0, t0) = (process_cpu_ns(), Instant::now());
            round!(&any, table, which, args.batch, 2 * r + 100, ROWS);
            slot.0.wall += t0.elapsed();
            slot.0.cpu_ns += process_cpu_ns() - c0;
            slot.0.n += 1;
            let (c0, t0) = (process_cpu_ns(), Instant::now());
            round!(&native, table, which, args.batch, 2 * r + 101, ROWS);
            slot.1.wall += t0.elapsed();
            slot.1.cpu_ns += process_cpu_ns() - c0;
            slot.1.n += 1;
        }
    }
    any.close().await;
    native.close().await;
    std::fs::remove_dir_all(&dir).ok();
    Ok(out)
}

fn print(backend: &str, batch: usize, results: &[(Tally, Tally); 3]) {
    println!(
        "{backend:<10} {:<8} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "stmt", "Any wall µs", "native wall", "Any CPU µs", "native CPU", "CPU Δ"
    );
    for (i, (any, native)) in results.iter().enumerate() {
        let (aw, ac) = any.per_op();
        let (nw, nc) = native.per_op();
        println!(
            "{backend:<10} {:<8} {aw:>12.1} {nw:>12.1} {ac:>12.1} {nc:>12.1} {:>7.0}%",
            format!("{}{batch}", STATEMENTS[i]),
            (nc - ac) / ac * 100.0
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sqlx::any::install_default_drivers();
    println!(
        "{} rounds per statement and driver, {} rows per statement, interleaved",
        args.rounds, args.batch
    );
    let pg = measure_pg(&args).await?;
    print("postgres", args.batch, &pg);
    let sqlite = measure_sqlite(&args).await?;
    print("sqlite", args.batch, &sqlite);
    Ok(())
}
