//! `bench`: Switchyard end to end on this machine. Starts the real `switchyard` binary (embedded
//! SQLite, or PostgreSQL + Redis with an API process and a separate worker process), creates a
//! tenant and a webhook workflow through the API, posts events over HTTP with keep-alive, and
//! receives the deliveries on a local receiver. Prints accepted and delivered events/s, latency
//! percentiles at half the measured maximum, idle latency, peak RSS, and the same machine's
//! ceiling: a plain HTTP client→receiver loop without the engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use switchyard_bench::bar;
use switchyard_bench::receiver::{Seen, delivered, start_receiver};
use switchyard_bench::server::Server;
use switchyard_bench::setup::{self, event, post_event};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One `switchyard serve` on an embedded SQLite file.
    Sqlite,
    /// `switchyard serve --no-worker` plus one `switchyard worker`, on PostgreSQL and Redis.
    Postgres,
}

#[derive(Debug, Parser)]
#[command(about = "End-to-end benchmark of Switchyard")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    mode: Mode,
    /// Events posted flat out for the throughput figure.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Concurrent HTTP requests while posting flat out.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of the fixed-rate latency run.
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// Events/s of the latency run (default: half the measured maximum).
    #[arg(long)]
    rate: Option<f64>,
    /// Worker concurrency of the server.
    #[arg(long, default_value_t = 64)]
    worker_concurrency: usize,
    #[command(flatten)]
    target: switchyard_bench::Target,
}

/// The machine's ceiling: the same client posting the same body straight to the receiver.
async fn ceiling(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let body = event("ceiling");
    let started = Instant::now();
    let done = futures::stream::iter(0..n)
        .map(|_| {
            let request = http.post(url).json(&body);
            async move { request.send().await.map(|r| r.status().is_success()) }
        })
        .buffer_unordered(concurrency)
        .filter(|r| futures::future::ready(matches!(r, Ok(true))))
        .count()
        .await;
    if done != n {
        bail!("ceiling run: {done} of {n} succeeded");
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn wait_delivered(seen: &Arc<Mutex<Seen>>, n: usize, what: &str) -> anyhow::Result<Instant> {
    let progress = bar(n as u64, what);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let got = delivered(seen);
        progress.set_position(got as u64);
        if got >= n {
            progress.finish_and_clear();
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("only {got} of {n} deliveries arrived within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no execution of the run is queued or running: every delivery's attempt and
/// outcome are recorded in the database (the receiver sees a delivery just before that commit).
async fn wait_recorded(http: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut open = false;
        for status in ["queued", "running"] {
            let page: serde_json::Value = http
                .get(format!("{base}/api/executions?status={status}&limit=1"))
                .bearer_auth(key)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            open |= page["data"].as_array().is_some_and(|d| !d.is_empty());
        }
        if !open {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("executions still open after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentiles(latencies: &[Duration]) -> anyhow::Result<(f64, f64, f64)> {
    let mut histogram = Histogram::<u64>::new(3)?;
    for l in latencies {
        histogram.record(l.as_micros().max(1) as u64)?;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok((ms(0.50), ms(0.95), ms(0.99)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.target.check_binary()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let (hook, seen) = start_receiver().await?;

    println!(
        "ceiling: plain HTTP client → receiver, {} requests…",
        args.events
    );
    let ceiling_rps = ceiling(&http, &hook, args.events, args.concurrency).await?;
    if let Ok(mut s) = seen.lock() {
        *s = Seen::default();
    }

    // A database of the run's own.
    let (dir, prefix) = setup::run_scratch("bench")?;
    let mut common = setup::common_flags();
    match args.mode {
        Mode::Sqlite => {
            common.extend([
                "--database-url".into(),
                format!("sqlite://{}/switchyard.db?mode=rwc", dir.display()),
            ]);
        }
        Mode::Postgres => {
            let (_schema, url) = setup::postgres_schema(&args.target.postgres_url, "bench").await?;
            common.extend(setup::postgres_flags(&url, &args.target.redis_url, &prefix));
        }
    }
    let key = setup::create_tenant(&args.target.binary, &common, "bench").await?;

    let concurrency = args.worker_concurrency.to_string();
    let mut servers = Vec::new();
    let serve_args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend([
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--concurrency".into(),
            concurrency.clone(),
        ]);
        a.extend(common.clone());
        a
    };
    match args.mode {
        Mode::Sqlite => {
            servers.push(Server::start(&args.target.binary, &serve_args(&["serve"])).await?)
        }
        Mode::Postgres => {
            servers.push(
                Server::start(&args.target.binary, &serve_args(&["serve", "--no-worker"])).await?,
            );
            servers.push(Server::start(&args.target.binary, &serve_args(&["worker"])).await?);
        }
    }
    let base = servers[0].base.clone().context("API address")?;
    setup::configure_webhook_workflow(&http, &base, &key, "bench", &hook).await?;

    // Warm-up.
    for i in 0..200 {
        post_event(&http, &base, &key, &format!("warm{i}")).await?;
    }
    wait_delivered(&seen, 200, "warm-up").await?;
    if let Ok(mut s) = seen.lock() {
        *s = Seen::default();
    }

    // Throughput: flat out.
    println!(
        "throughput: {} events flat out, {} concurrent requests…",
        args.events, args.concurrency
    );
    let progress = bar(args.events as u64, "posting");
    let pids: Vec<Option<u32>> = servers.iter().map(Server::pid).collect();
    let cpu_before = switchyard_bench::CpuSample::take(&pids);
    let started = Instant::now();
    let posted = futures::stream::iter(0..args.events)
        .map(|i| {
            let (http, base, key, progress) =
                (http.clone(), base.clone(), key.clone(), progress.clone());
            async move {
                let result = post_event(&http, &base, &key, &format!("t{i}")).await;
                progress.inc(1);
                result
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<_>>()
        .await;
    progress.finish_and_clear();
    if let Some(Err(e)) = posted.into_iter().find(Result::is_err) {
        return Err(e.context("posting events"));
    }
    let accepted_secs = started.elapsed().as_secs_f64();
    let last_received = wait_delivered(&seen, args.events, "deliveries").await?;
    // Delivered means delivered and recorded: the rate runs to the last outcome's commit.
    let last = wait_recorded(&http, &base, &key).await?;
    let cpu = cpu_before.per_event(
        &switchyard_bench::CpuSample::take(&pids),
        args.events,
        match args.mode {
            Mode::Sqlite => &["serve"],
            Mode::Postgres => &["api", "worker"],
        },
    );
    let record_lag_ms = last.duration_since(last_received).as_secs_f64() * 1000.0;
    let delivered_secs = last.duration_since(started).as_secs_f64();
    let accepted_rate = args.events as f64 / accepted_secs;
    let delivered_rate = args.events as f64 / delivered_secs;

    // Latency at a fixed rate: half the measured maximum unless given.
    let rate = args.rate.unwrap_or(delivered_rate / 2.0).max(1.0);
    let n = (rate * args.latency_seconds as f64) as usize;
    println!("latency: {n} events at {rate:.0}/s…");
    if let Ok(mut s) = seen.lock() {
        *s = Seen::default();
    }
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let fixed_started = Instant::now();
    for i in 0..n {
        ticker.tick().await;
        let id = format!("l{i}");
        let (http, base, key, sent) = (http.clone(), base.clone(), key.clone(), sent.clone());
        tasks.spawn(async move {
            if let Ok(mut s) = sent.lock() {
                s.insert(id.clone(), Instant::now());
            }
            post_event(&http, &base, &key, &id).await
        });
    }
    let posting_secs = fixed_started.elapsed().as_secs_f64();
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    let last_delivery = wait_delivered(&seen, n, "latency deliveries").await?;
    let fixed_delivered_rate = n as f64 / last_delivery.duration_since(fixed_started).as_secs_f64();
    // In order of sending: a backlog that grows shows as later events waiting longer.
    let timeline: Vec<(Instant, Duration)> = {
        let sent = sent.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        let seen = seen.lock().map_err(|_| anyhow::anyhow!("lock"))?;
        let mut timeline: Vec<(Instant, Duration)> = sent
            .iter()
            .filter_map(|(id, at)| {
                seen.arrivals
                    .get(id)
                    .map(|got| (*at, got.duration_since(*at)))
            })
            .collect();
        timeline.sort_by_key(|(at, _)| *at);
        timeline
    };
    let latencies: Vec<Duration> = timeline.iter().map(|(_, l)| *l).collect();
    let (p50, p95, p99) = percentiles(&latencies)?;
    let tenth = (latencies.len() / 10).max(1);
    let (_, _, first_p99) = percentiles(&latencies[..tenth])?;
    let (_, _, last_p99) = percentiles(&latencies[latencies.len() - tenth..])?;

    // Idle latency: one event at a time on an otherwise idle system.
    let mut idle = Vec::new();
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = format!("i{i}");
        let at = Instant::now();
        post_event(&http, &base, &key, &id).await?;
        loop {
            let got = seen.lock().ok().and_then(|s| s.arrivals.get(&id).copied());
            if let Some(got) = got {
                idle.push(got.duration_since(at));
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let (idle_p50, _, idle_p99) = percentiles(&idle)?;
    let duplicates = seen
        .lock()
        .map(|s| s.total.saturating_sub(s.arrivals.len()))
        .unwrap_or(0);
    let rss: Vec<String> = servers
        .iter()
        .map(|s| {
            s.peak_rss_mib()
                .map(|m| format!("{m:.0} MiB"))
                .unwrap_or_else(|| "?".into())
        })
        .collect();

    println!();
    println!("mode                         {:?}", args.mode);
    println!("ceiling (client→receiver)    {ceiling_rps:>10.0} req/s");
    println!(
        "events accepted              {accepted_rate:>10.0} events/s   ({:.2} of ceiling)",
        accepted_rate / ceiling_rps
    );
    println!(
        "events delivered end to end  {delivered_rate:>10.0} events/s   ({:.2} of ceiling; first post → last attempt recorded, {record_lag_ms:.0} ms after the last delivery arrived)",
        delivered_rate / ceiling_rps
    );
    println!(
        "latency at {rate:>6.0}/s          p50 {p50:.1} ms   p95 {p95:.1} ms   p99 {p99:.1} ms"
    );
    println!(
        "fixed-rate run               {n} events posted in {posting_secs:.1} s, delivered at {fixed_delivered_rate:.0}/s; p99 first tenth {first_p99:.1} ms, last tenth {last_p99:.1} ms"
    );
    println!("idle latency                 p50 {idle_p50:.1} ms   p99 {idle_p99:.1} ms");
    println!("CPU ms per event (throughput) {cpu}");
    println!("peak RSS                     {}", rss.join(" + "));
    println!("duplicate deliveries         {duplicates}");
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
