//! `fairness`: does one tenant's backlog delay another tenant's fresh events (CONTRACT §7 "Fair
//! queuing")? Starts the real `switchyard` binary (embedded SQLite, or PostgreSQL + Redis with an
//! API process and a worker process), gives two tenants the same webhook workflow, posts a burst of
//! `--backlog` events for the noisy tenant, then — while that backlog drains — posts the quiet
//! tenant's events at `--quiet-rate` and prints their post → delivery p50/p95/p99.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use switchyard_bench::receiver::{delivered, start_receiver};
use switchyard_bench::setup::{self, post_event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
#[command(about = "Quiet tenant latency behind a noisy tenant's backlog")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    mode: Mode,
    /// Events (one step each) the noisy tenant posts as a burst.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
    /// Quiet tenant events per second while the backlog drains.
    #[arg(long, default_value_t = 5.0)]
    quiet_rate: f64,
    /// Quiet tenant events in all.
    #[arg(long, default_value_t = 50)]
    quiet_events: usize,
    /// Worker concurrency of the server.
    #[arg(long, default_value_t = 64)]
    worker_concurrency: usize,
    #[command(flatten)]
    target: switchyard_bench::Target,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.target.check_binary()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()?;
    let (hook, seen) = start_receiver().await?;

    let (dir, prefix) = setup::run_scratch("fairness")?;
    let mut common = setup::common_flags();
    let mut schema = None;
    match args.mode {
        Mode::Sqlite => common.extend([
            "--database-url".into(),
            format!("sqlite://{}/switchyard.db?mode=rwc", dir.display()),
        ]),
        Mode::Postgres => {
            let (name, url) = setup::postgres_schema(&args.target.postgres_url, "fair").await?;
            schema = Some(name);
            common.extend(setup::postgres_flags(&url, &args.target.redis_url, &prefix));
        }
    }
    let noisy = setup::create_tenant(&args.target.binary, &common, "noisy").await?;
    let quiet = setup::create_tenant(&args.target.binary, &common, "quiet").await?;
    let serve_args = |role: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = role.iter().map(|s| s.to_string()).collect();
        a.extend([
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--concurrency".into(),
            args.worker_concurrency.to_string(),
        ]);
        a.extend(common.clone());
        a
    };
    let servers =
        setup::start_engine(&args.target.binary, args.mode == Mode::Postgres, serve_args).await?;
    let base = servers[0].base.clone().context("API address")?;
    setup::configure_webhook_workflow(&http, &base, &noisy, "noisy", &hook).await?;
    setup::configure_webhook_workflow(&http, &base, &quiet, "quiet", &hook).await?;

    println!("noisy tenant: posting a burst of {} events…", args.backlog);
    let started = Instant::now();
    let posted = futures::stream::iter(0..args.backlog)
        .map(|i| {
            let (http, base, key) = (&http, &base, &noisy);
            async move { post_event(http, base, key, &format!("noisy{i}")).await }
        })
        .buffer_unordered(64)
        .filter(|r| futures::future::ready(r.is_ok()))
        .count()
        .await;
    if posted != args.backlog {
        bail!("only {posted} of {} noisy events accepted", args.backlog);
    }
    let backlog_left = args.backlog.saturating_sub(delivered(&seen));
    println!(
        "burst accepted in {:.1} s; {backlog_left} noisy deliveries still waiting",
        started.elapsed().as_secs_f64()
    );

    // The quiet tenant posts at a low rate while the backlog drains.
    let mut sent = Vec::with_capacity(args.quiet_events);
    let gap = Duration::from_secs_f64(1.0 / args.quiet_rate.max(0.01));
    let mut backlog_at_quiet = Vec::new();
    for i in 0..args.quiet_events {
        let id = format!("quiet{i}");
        let at = Instant::now();
        post_event(&http, &base, &quiet, &id).await?;
        sent.push((id, at));
        backlog_at_quiet.push(args.backlog.saturating_sub(delivered(&seen)));
        tokio::time::sleep(gap).await;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let latencies = loop {
        let arrivals = seen
            .lock()
            .map(|s| {
                sent.iter()
                    .filter_map(|(id, at)| s.arrivals.get(id).map(|a| a.duration_since(*at)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if arrivals.len() == sent.len() {
            break arrivals;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {} quiet deliveries arrived",
                arrivals.len(),
                sent.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut histogram = Histogram::<u64>::new(3)?;
    for l in &latencies {
        histogram.record(l.as_micros().max(1) as u64)?;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let waiting_min = backlog_at_quiet.iter().min().copied().unwrap_or(0);
    let waiting_max = backlog_at_quiet.iter().max().copied().unwrap_or(0);
    println!(
        "mode {:?}: quiet tenant post → delivery over {} events ({} noisy deliveries waiting \
         when they were posted: {waiting_max} … {waiting_min}): p50 {:.1} ms, p95 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms",
        args.mode,
        latencies.len(),
        backlog_at_quiet.len(),
        ms(0.50),
        ms(0.95),
        ms(0.99),
        histogram.max() as f64 / 1000.0,
    );
    drop(servers);
    if let Some(schema) = schema {
        setup::drop_postgres_schema(&args.target.postgres_url, &schema).await?;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
