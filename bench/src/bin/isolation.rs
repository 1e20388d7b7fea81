//! `isolation`: one tenant's slow conditions must not delay another tenant (CONTRACT §7). Starts
//! the real `switchyard` (SQLite, or PostgreSQL + Redis with a separate worker), gives a noisy
//! tenant ten workflows whose Rhai condition spins until its deadline on every event, floods that
//! tenant's events from several connections, and meanwhile posts a quiet tenant's events at a
//! fixed rate to a webhook workflow. Prints the quiet tenant's `POST /api/events` time and event →
//! delivery latency (p50/p95/p99), and how many noisy events were accepted meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::json;
use switchyard_bench::receiver::start_receiver;
use switchyard_bench::setup::{self, post_event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
#[command(about = "Another tenant's latency while one tenant's conditions burn their budget")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    mode: Mode,
    /// Seconds of the measured run.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Concurrent connections flooding the noisy tenant's events.
    #[arg(long, default_value_t = 8)]
    flood_connections: usize,
    /// The quiet tenant's events per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    #[command(flatten)]
    target: switchyard_bench::Target,
}

/// Spins until the evaluation's deadline whenever the entity says `slow: 1` (the save-time trial
/// runs on an empty entity and passes).
const SLOW: &str =
    r#"if entity.slow == 1 { let s = ""; s.pad(60000, 'x'); loop { s.to_upper(); } } true"#;

fn percentiles(samples: &[Duration]) -> anyhow::Result<String> {
    let mut histogram = Histogram::<u64>::new(3)?;
    for s in samples {
        histogram.record(s.as_micros().max(1) as u64)?;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(format!(
        "p50 {:.1} ms   p95 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        ms(0.50),
        ms(0.95),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.target.check_binary()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let (hook, seen) = start_receiver().await?;
    let (dir, prefix) = setup::run_scratch("isolation")?;
    let mut common = setup::common_flags();
    match args.mode {
        Mode::Sqlite => common.extend([
            "--database-url".into(),
            format!("sqlite://{}/switchyard.db?mode=rwc", dir.display()),
        ]),
        Mode::Postgres => {
            let (_schema, url) =
                setup::postgres_schema(&args.target.postgres_url, "isolation").await?;
            common.extend(setup::postgres_flags(&url, &args.target.redis_url, &prefix));
        }
    }
    let noisy = setup::create_tenant(&args.target.binary, &common, "noisy").await?;
    let quiet = setup::create_tenant(&args.target.binary, &common, "quiet").await?;
    let serve_args = |first: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = first.iter().map(|s| s.to_string()).collect();
        a.extend(["--listen".into(), "127.0.0.1:0".into()]);
        a.extend(common.clone());
        a
    };
    let servers =
        setup::start_engine(&args.target.binary, args.mode == Mode::Postgres, serve_args).await?;
    let base = servers[0].base.clone().context("API address")?;
    setup::configure_webhook_workflow(&http, &base, &quiet, "quiet", &hook).await?;
    for i in 0..10 {
        let answer = http
            .post(format!("{base}/api/workflows/configure"))
            .bearer_auth(&noisy)
            .json(&json!({"name": format!("slow {i}"), "entityType": "Order",
                "triggerId": "order_paid", "condition": SLOW,
                "action": {"type": "update_status", "status": "seen"}}))
            .send()
            .await?;
        if !answer.status().is_success() {
            bail!("configuring a slow workflow: {}", answer.text().await?);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for c in 0..args.flood_connections {
        let (http, base, key, stop, accepted) = (
            http.clone(),
            base.clone(),
            noisy.clone(),
            stop.clone(),
            accepted.clone(),
        );
        flood.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"entityType": "Order", "trigger": "order_paid",
                    "entityId": format!("noisy_{c}_{i}"), "eventId": format!("noisy-{c}-{i}"),
                    "data": {"status": "paid", "slow": 1}});
                let sent = http
                    .post(format!("{base}/api/events"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status().is_success()) {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    // Let the flood fill the noisy tenant's lane first.
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "measuring: {} flood connections, quiet tenant at {}/s for {}s…",
        args.flood_connections, args.rate, args.seconds
    );
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let n = (args.rate * args.seconds as f64) as usize;
    let mut posted = Vec::with_capacity(n);
    let mut post_times = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let at = started + period * i as u32;
        tokio::time::sleep_until(at.into()).await;
        let id = format!("quiet{i}");
        let sent = Instant::now();
        post_event(&http, &base, &quiet, &id).await?;
        post_times.push(sent.elapsed());
        posted.push((id, sent));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let latencies = loop {
        let arrivals = seen.lock().map(|s| s.arrivals.clone()).unwrap_or_default();
        let got: Vec<Duration> = posted
            .iter()
            .filter_map(|(id, sent)| arrivals.get(id).map(|a| a.duration_since(*sent)))
            .collect();
        if got.len() == posted.len() {
            break got;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {} quiet deliveries arrived",
                got.len(),
                posted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let noisy_accepted = accepted.load(Ordering::Relaxed);
    for task in flood {
        task.abort();
    }
    println!("mode                              {:?}", args.mode);
    println!(
        "noisy tenant                      10 workflows burning the whole budget per event; {noisy_accepted} events accepted ({:.1}/s)",
        noisy_accepted as f64 / started.elapsed().as_secs_f64()
    );
    println!(
        "quiet POST /api/events            {}",
        percentiles(&post_times)?
    );
    println!(
        "quiet event → delivery ({n} events) {}",
        percentiles(&latencies)?
    );
    drop(servers);
    Ok(())
}
