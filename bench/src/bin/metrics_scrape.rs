//! What one `GET /metrics` costs as the executions table grows: the query the scrape used to run
//! (`COUNT(*) … GROUP BY status` over every execution), the background refresh's index-only
//! count of the live statuses, and a real scrape of a running server (which now runs no query).
//!
//! `cargo run --release -p switchyard-bench --bin metrics_scrape -- --executions 1000000`

use std::time::{Duration, Instant};

use clap::Parser;
use switchyard::{App, Cli, Roles};

#[derive(Parser)]
struct Args {
    /// Executions in the table; 1 in 100 is live (queued, running, waiting or paused).
    #[arg(long, default_value_t = 1_000_000)]
    executions: u64,
    /// Timed repetitions of each measurement.
    #[arg(long, default_value_t = 20)]
    runs: u32,
    /// `sqlite://…` (default: a fresh file in a temporary directory) or `postgres://…` (then
    /// `--master-key` and `--redis-url` must be given through the environment).
    #[arg(long)]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("sy-metrics-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("switchyard.db").display()));
    let settings = Cli::try_parse_from([
        "switchyard",
        "serve",
        "--database-url",
        &url,
        "--listen",
        "127.0.0.1:0",
    ])?
    .settings;
    let app = App::build(settings).await?;

    // Rows straight into the table: the figure is about counting them, not making them.
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::query("DELETE FROM executions").execute(&pool).await?;
    let started = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, event_id, \
         entity_type, entity_id, status, step_count, created_at, updated_at) \
         SELECT 'x' || i, 't', 'w', 1, 'e' || i, 'Order', 'o' || i, \
         CASE WHEN i % 100 = 0 THEN 'queued' WHEN i % 100 = 1 THEN 'paused' \
         WHEN i % 2 = 0 THEN 'succeeded' ELSE 'cancelled' END, 1, 0, 0 FROM n",
        count = args.executions
    )))
    .execute(&pool)
    .await?;
    if url.starts_with("postgres") {
        sqlx::query("VACUUM ANALYZE executions")
            .execute(&pool)
            .await?;
    } else {
        sqlx::query("ANALYZE").execute(&pool).await?;
    }
    println!(
        "{} executions written in {:.1?}",
        args.executions,
        started.elapsed()
    );

    let old = time(args.runs, || async {
        sqlx::query("SELECT status, COUNT(*) FROM executions GROUP BY status")
            .fetch_all(&pool)
            .await
            .map(|_| ())
    })
    .await?;
    let new = time(args.runs, || async {
        sqlx::query(
            "SELECT status, COUNT(*) FROM executions \
             WHERE status IN ('queued', 'running', 'waiting', 'paused') GROUP BY status",
        )
        .fetch_all(&pool)
        .await
        .map(|_| ())
    })
    .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let roles = Roles {
        api: true,
        workers: false,
        scheduler: false,
    };
    let server = tokio::spawn(app.serve(Some(listener), roles, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let metrics_url = format!("{base}/metrics");
    // The first refresh of the gauges runs at start; wait for it to show.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = client.get(&metrics_url).send().await?.text().await?;
        if text.contains("switchyard_executions{") || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scrape = time(args.runs, || async {
        client
            .get(&metrics_url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await
            .map(|_| ())
    })
    .await?;

    println!(
        "per scrape, before (GROUP BY over all executions): median {:.2?}",
        old
    );
    println!(
        "background refresh every 10 s (index-only count of live statuses): median {:.2?}",
        new
    );
    println!(
        "per scrape, now (GET /metrics end to end, no query): median {:.2?}",
        scrape
    );

    let _ = stop.send(());
    server.await??;
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The median of `runs` timed calls.
async fn time<F, Fut, E>(runs: u32, mut call: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: Into<anyhow::Error>,
{
    let mut samples = Vec::with_capacity(runs as usize);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        call().await.map_err(Into::into)?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}
